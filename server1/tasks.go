package main

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/handoffbroker/handoff/broker/token"
	"github.com/handoffbroker/handoff/shared"
	"github.com/labstack/echo/v4"
)

// task is a piece of work waiting for a user, completed at one audience.
type task struct {
	token.Task
	Audience audience
}

// taskBook holds every user's tasks. The demo data stands in for the
// portal's own records.
type taskBook struct {
	byUser map[string][]task
}

// transfer builds an "approve transfer" task. Its parameters' digest is
// computed here, once, rather than by every mint.
func transfer(number, amount, currency, payee string, to audience) task {
	params := map[string]string{"amount": amount, "currency": currency, "payee": payee}
	return task{
		Task: token.Task{
			ID:           "transfer-" + number,
			Action:       "approve",
			Params:       params,
			ParamsDigest: token.DigestParams(params),
		},
		Audience: to,
	}
}

func demoTasks(reg *registry) *taskBook {
	pay := reg.primary()
	return &taskBook{byUser: map[string][]task{
		"alice": {
			transfer("123", "250.00", "EUR", "ACME Corp", pay),
			transfer("124", "80.00", "EUR", "Globex Ltd", pay),
		},
		"bob": {
			transfer("200", "1200.00", "EUR", "Initech", pay),
		},
	}}
}

// find returns the user's task with that id for that audience. Both must
// match: a user cannot obtain a token for someone else's task, nor for
// their own task at a service that does not handle it.
func (b *taskBook) find(username, audienceID, taskID string) (task, bool) {
	for _, t := range b.byUser[username] {
		if t.ID == taskID && t.Audience.ID == audienceID {
			return t, true
		}
	}
	return task{}, false
}

func (b *taskBook) list(username string) []task { return b.byUser[username] }

// taskRow is one line of the task list page.
type taskRow struct {
	ID, Number, Audience, AudienceName string
	// StartLink is the audience's handoff start URL for this task; "" for
	// an audience without one (the unbound form).
	StartLink string
	// Summary is the task's parameters as users read them on both
	// servers (shared.DescribeTask).
	Summary string
	// Approved is set once the audience reported the task approved: the
	// row offers no Continue. Cancelled is set when it last reported the
	// task cancelled: it is still pending.
	Approved, Cancelled bool
}

type indexPage struct {
	User  user
	Tasks []taskRow
	CSRF  string
}

// startLink is startURL with the task's id in the query, or "".
func startLink(startURL, taskID string) string {
	if startURL == "" {
		return ""
	}
	sep := "?"
	if strings.Contains(startURL, "?") {
		sep = "&"
	}
	return startURL + sep + url.Values{"task_id": {taskID}}.Encode()
}

func (a *app) handleIndex(c echo.Context) error {
	u, ok := a.currentUser(c)
	if !ok {
		return c.Redirect(http.StatusSeeOther, "/login")
	}
	page := indexPage{User: u, CSRF: csrfToken(c)}
	for _, t := range a.tasks.list(u.Username) {
		var outcome token.Outcome
		if t.Audience.ID == a.results.audience {
			outcome = a.results.outcomes.get(u.Username, t.ID)
		}
		page.Tasks = append(page.Tasks, taskRow{
			Approved:     outcome == token.OutcomeApproved,
			Cancelled:    outcome == token.OutcomeCancelled,
			ID:           t.ID,
			Number:       strings.TrimPrefix(t.ID, "transfer-"),
			Audience:     t.Audience.ID,
			AudienceName: t.Audience.Name,
			StartLink:    startLink(t.Audience.StartURL, t.ID),
			Summary:      shared.DescribeTask(t.Task).Summary,
		})
	}
	return c.Render(http.StatusOK, "index.html", page)
}
