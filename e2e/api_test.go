package e2e

import (
	"bytes"
	"encoding/json"
	"mime"
	"net/http"
	"strings"
	"testing"
)

// callTaskAPI posts params as JSON to SERVER2's POST
// /api/v1/tasks/{taskID}/{action}, with token as Bearer unless it is empty.
func callTaskAPI(t testing.TB, s *Server, token, taskID, action string, params map[string]string) *Page {
	t.Helper()
	body, err := json.Marshal(params)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, s.URL+"/api/v1/tasks/"+taskID+"/"+action, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := plainClient.Do(req)
	if err != nil {
		t.Fatalf("e2e: POST %s: %v", req.URL.Path, err)
	}
	return readPage(t, resp)
}

// TestTaskAPI: a token from `server1 mint` used as a Bearer token on
// SERVER2's task API works once, for its own task only, and every refusal
// is problem+json with the RFC 6750 challenge its status calls for.
func TestTaskAPI(t *testing.T) {
	t.Parallel()
	c := StartCluster(t, ClusterConfig{})
	token := c.Mint(t, mintRequest{})
	fresh := c.Mint(t, mintRequest{})

	// The cases run in order: the second reuses the first one's token.
	tests := []struct {
		name          string
		giveToken     string
		giveTask      string
		giveParams    map[string]string
		wantStatus    int
		wantReason    string
		wantChallenge string
	}{
		{
			name:       "ok/first_use",
			giveToken:  token,
			giveTask:   demoTask,
			giveParams: demoParams,
			wantStatus: http.StatusOK,
		},
		{
			name:       "fail/replayed",
			giveToken:  token,
			giveTask:   demoTask,
			giveParams: demoParams,
			wantStatus: http.StatusConflict,
			wantReason: "replayed",
		},
		{
			// A token for one transfer must not approve another.
			name:          "fail/task_mismatch",
			giveToken:     fresh,
			giveTask:      otherTask,
			giveParams:    otherParams,
			wantStatus:    http.StatusForbidden,
			wantReason:    "task_mismatch",
			wantChallenge: `error="insufficient_scope"`,
		},
		{
			name:          "fail/missing_token",
			giveTask:      demoTask,
			giveParams:    demoParams,
			wantStatus:    http.StatusUnauthorized,
			wantReason:    "missing_token",
			wantChallenge: "Bearer",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := callTaskAPI(t, c.Server2, tt.giveToken, tt.giveTask, demoAction, tt.giveParams)

			if p.Status != tt.wantStatus {
				t.Fatalf("got %s, want %d", p.describe(), tt.wantStatus)
			}
			if tt.wantReason == "" {
				var got struct {
					Status  string `json:"status"`
					TaskID  string `json:"task_id"`
					Subject string `json:"subject"`
				}
				if err := json.Unmarshal(p.Body, &got); err != nil {
					t.Fatalf("answer is not JSON: %v", err)
				}
				if got.Status != "approved" || got.TaskID != tt.giveTask || got.Subject != demoUser {
					t.Errorf("answer = %+v, want approved %s for %s", got, tt.giveTask, demoUser)
				}
				return
			}
			if mt, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type")); mt != "application/problem+json" {
				t.Errorf("Content-Type = %q, want application/problem+json", p.Header.Get("Content-Type"))
			}
			var pr problem
			if err := json.Unmarshal(p.Body, &pr); err != nil {
				t.Fatalf("problem body: %v", err)
			}
			if pr.Code != tt.wantReason || pr.Status != tt.wantStatus {
				t.Errorf("problem = %+v, want code %s status %d", pr, tt.wantReason, tt.wantStatus)
			}
			ch := p.Header.Get("WWW-Authenticate")
			if tt.wantChallenge == "" {
				// RFC 6750 §3: invalid_token goes with 401 only; a replayed
				// token is 409.
				if ch != "" {
					t.Errorf("WWW-Authenticate = %q, want none", ch)
				}
				return
			}
			if !strings.HasPrefix(ch, "Bearer") || !strings.Contains(ch, tt.wantChallenge) {
				t.Errorf("WWW-Authenticate = %q, want a Bearer challenge with %s", ch, tt.wantChallenge)
			}
		})
	}
}
