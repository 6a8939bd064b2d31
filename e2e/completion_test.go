package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
)

// sessionAt hands taskID off from home (u's SERVER1 task list), posting
// the token to s (a SERVER2 replica) with u's cookies, and returns the task
// page s shows.
func sessionAt(t testing.TB, u *User, home *Page, s *Server, taskID string) *Page {
	t.Helper()
	h := u.StartHandoff(t, home, taskID)
	resp := u.PostForm(t, s.URL+"/handoff", url.Values{"token": {h.Token}})
	if resp.Status != http.StatusSeeOther {
		t.Fatalf("e2e: handoff to %s: %s", s.Label, resp.describe())
	}
	page := u.Follow(t, resp)
	if page.Status != http.StatusOK || page.ByID("task-page") == nil {
		t.Fatalf("e2e: task page at %s: %s", s.Label, page.describe())
	}
	return page
}

// aliceAt is sessionAt for a new user signed in as alice.
func aliceAt(t testing.TB, c *Cluster, s *Server, taskID string) (*User, *Page) {
	t.Helper()
	u := NewUser(t, c)
	return u, sessionAt(t, u, u.Home(t), s, taskID)
}

// wantCompleted fails the test unless p is a 200 task-done page.
func wantCompleted(t testing.TB, p *Page, what string) {
	t.Helper()
	if p.Status != http.StatusOK || p.ByID("task-done") == nil {
		t.Errorf("%s: %s, want 200 with #task-done", what, p.describe())
	}
}

// wantAlreadyCompleted fails the test unless p is 409 already_completed,
// as problem+json when api and as an HTML page otherwise.
func wantAlreadyCompleted(t testing.TB, p *Page, api bool, what string) {
	t.Helper()
	if p.Status != http.StatusConflict || p.Reason() != "already_completed" {
		t.Errorf("%s: %s, want 409 already_completed", what, p.describe())
	}
	if isProblem := strings.HasPrefix(p.Header.Get("Content-Type"), "application/problem+json"); isProblem != api {
		t.Errorf("%s: Content-Type %q, want problem+json: %v", what, p.Header.Get("Content-Type"), api)
	}
}

// wantTaskPageDone fails the test unless u's task page at s for taskID
// shows the task done, without the confirm form.
func wantTaskPageDone(t testing.TB, u *User, s *Server, taskID, what string) {
	t.Helper()
	p := u.Get(t, s.URL+"/tasks/"+taskID)
	if p.Status != http.StatusOK || p.ByID("task-done") == nil || p.ByID("complete-form") != nil {
		t.Errorf("%s: %s, want the task shown done", what, p.describe())
	}
}

// TestTaskCompletedOnce: completion is a fact about the task. Of two
// handoffs for one task, only the first completion succeeds; the second
// gets 409 already_completed and its task page shows the task done. Of two
// tokens for one task on the task API, only the first approves it.
func TestTaskCompletedOnce(t *testing.T) {
	t.Parallel()
	c := StartCluster(t, ClusterConfig{})

	t.Run("fail/two_handoffs", func(t *testing.T) {
		first, firstPage := aliceAt(t, c, c.Server2, demoTask)
		second, secondPage := aliceAt(t, c, c.Server2, demoTask)

		wantCompleted(t, first.SubmitForm(t, firstPage, "complete", nil), "the first completion")
		wantAlreadyCompleted(t, second.SubmitForm(t, secondPage, "complete", nil), false, "the second handoff's completion")
		wantTaskPageDone(t, second, c.Server2, demoTask, "the second handoff's task page")
	})

	t.Run("fail/two_tokens_on_the_api", func(t *testing.T) {
		one := c.Mint(t, mintRequest{TaskID: otherTask, Params: otherParams})
		two := c.Mint(t, mintRequest{TaskID: otherTask, Params: otherParams})

		if p := callTaskAPI(t, c.Server2, one, otherTask, demoAction, otherParams); p.Status != http.StatusOK {
			t.Fatalf("the first token: %s, want 200", p.describe())
		}
		wantAlreadyCompleted(t, callTaskAPI(t, c.Server2, two, otherTask, demoAction, otherParams), true, "the second token")
	})
}

// TestRedisTaskCompletedOnceAcrossReplicas: two SERVER2 replicas sharing
// Redis agree that a task is done: completed through a session at one, it
// cannot be completed through a session or a token at the other, and of
// many tokens for one task raced over both replicas exactly one approves
// it.
func TestRedisTaskCompletedOnceAcrossReplicas(t *testing.T) {
	t.Parallel()
	c, a, b, _ := startRedisReplicas(t)

	t.Run("fail/session_at_a_then_session_and_token_at_b", func(t *testing.T) {
		atA, pageA := aliceAt(t, c, a, demoTask)
		atB, pageB := aliceAt(t, c, b, demoTask)
		token := c.Mint(t, mintRequest{})

		wantCompleted(t, atA.SubmitForm(t, pageA, "complete", nil), "completion at "+a.Label)
		wantAlreadyCompleted(t, atB.SubmitForm(t, pageB, "complete", nil), false, "completion at "+b.Label)
		wantTaskPageDone(t, atB, b, demoTask, "the task page at "+b.Label)
		wantAlreadyCompleted(t, callTaskAPI(t, b, token, demoTask, demoAction, demoParams), true, "a token at "+b.Label)
	})

	t.Run("ok/one_of_many_racing_tokens", func(t *testing.T) {
		const n = 20
		const task = "transfer-900"
		tokens := make([]string, n)
		for i := range tokens {
			tokens[i] = c.Mint(t, mintRequest{TaskID: task, Params: demoParams})
		}
		statuses := make([]int, n)
		errs := make([]error, n)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i, token := range tokens {
			s := a
			if i%2 == 1 {
				s = b
			}
			wg.Go(func() {
				<-start
				statuses[i], errs[i] = tryCallTaskAPI(s, token, task, demoAction, demoParams)
			})
		}
		close(start)
		wg.Wait()
		counts := map[int]int{}
		for i, st := range statuses {
			if errs[i] != nil {
				t.Fatalf("task API call: %v", errs[i])
			}
			counts[st]++
		}
		if counts[http.StatusOK] != 1 || counts[http.StatusConflict] != n-1 {
			t.Errorf("%d tokens for one task over two replicas answered %v, want one 200 and %d 409", n, counts, n-1)
		}
	})
}

// tryCallTaskAPI is callTaskAPI for goroutines other than the test's: it
// returns the status, and an error for a transport failure or a 409 that
// is not already_completed.
func tryCallTaskAPI(s *Server, token, taskID, action string, params map[string]string) (int, error) {
	body, err := json.Marshal(params)
	if err != nil {
		return 0, err
	}
	req, err := http.NewRequest(http.MethodPost, s.URL+"/api/v1/tasks/"+taskID+"/"+action, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := plainClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusConflict {
		var pr problem
		if err := json.NewDecoder(resp.Body).Decode(&pr); err != nil || pr.Code != "already_completed" {
			return resp.StatusCode, fmt.Errorf("409 with code %q, want already_completed", pr.Code)
		}
	}
	return resp.StatusCode, nil
}
