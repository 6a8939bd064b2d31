package shared

import (
	"regexp"
	"slices"
	"strings"

	"github.com/handoffbroker/handoff/broker/token"
)

// TaskView is a task as both servers word it for users: SERVER1 in its
// task list, SERVER2 on the task and done pages, so a user reads the same
// words on both sides of the handoff.
type TaskView struct {
	// Name names the task: "transfer 123".
	Name string
	// Purpose is what the user is asked to do: "approve transfer 123".
	Purpose string
	// Button labels the confirmation: "Approve transfer".
	Button string
	// Done says the task is done: "Transfer 123 was approved."
	Done string
	// Summary is the parameters as one phrase ("250.00 EUR to ACME
	// Corp"); "" for a task type without one.
	Summary string
	// Params are the parameters the summary does not cover, in name order.
	Params []TaskParam
}

// TaskParam is one task parameter.
type TaskParam struct{ Name, Value string }

// transferPrefix starts the id of every transfer.
const transferPrefix = "transfer-"

// DescribeTask words t for users. A transfer to approve with an amount, a
// currency and a payee reads "250.00 EUR to ACME Corp"; any other task
// lists its parameters by name.
func DescribeTask(t token.Task) TaskView {
	name := TaskName(t.ID)
	v := TaskView{Name: name, Purpose: t.Action + " " + name, Done: capitalize(name) + " was " + pastTense(t.Action) + "."}
	v.Button = "Confirm " + t.Action
	params := t.Params
	if strings.HasPrefix(t.ID, transferPrefix) && t.Action == "approve" {
		v.Button = "Approve transfer"
		if amount, currency, payee := params["amount"], params["currency"], params["payee"]; amount != "" && currency != "" && payee != "" {
			v.Summary = amount + " " + currency + " to " + payee
			params = withoutKeys(params, "amount", "currency", "payee")
		}
	}
	for k, val := range params {
		v.Params = append(v.Params, TaskParam{k, val})
	}
	slices.SortFunc(v.Params, func(x, y TaskParam) int { return strings.Compare(x.Name, y.Name) })
	return v
}

// showableID is a task id safe to print in a sentence. An id from a URL
// is the visitor's choice: printing any text would let a link put words
// on the page ("/tasks/Your account is locked, call ...").
var showableID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// TaskName names the task with id as users read it: "transfer 123" for
// "transfer-123", "task X" for another id, and "this task" for an id that
// is not short plain text.
func TaskName(id string) string {
	switch {
	case !showableID.MatchString(id):
		return "this task"
	case strings.HasPrefix(id, transferPrefix) && len(id) > len(transferPrefix):
		return "transfer " + strings.TrimPrefix(id, transferPrefix)
	default:
		return "task " + id
	}
}

func pastTense(action string) string {
	switch action {
	case "approve":
		return "approved"
	case "reject":
		return "rejected"
	default:
		return "completed"
	}
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func withoutKeys(m map[string]string, keys ...string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		if !slices.Contains(keys, k) {
			out[k] = v
		}
	}
	return out
}
