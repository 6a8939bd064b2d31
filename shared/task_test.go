package shared

import (
	"testing"

	"github.com/handoffbroker/handoff/broker/token"
	"github.com/stretchr/testify/assert"
)

func TestDescribeTask(t *testing.T) {
	tests := []struct {
		name string
		give token.Task
		want TaskView
	}{
		{name: "ok/transfer", give: token.Task{ID: "transfer-123", Action: "approve",
			Params: map[string]string{"amount": "250.00", "currency": "EUR", "payee": "ACME Corp"}},
			want: TaskView{Name: "transfer 123", Purpose: "approve transfer 123", Button: "Approve transfer",
				Done: "Transfer 123 was approved.", Summary: "250.00 EUR to ACME Corp"}},
		{name: "ok/transfer_with_a_reference", give: token.Task{ID: "transfer-9", Action: "approve",
			Params: map[string]string{"amount": "1.00", "currency": "EUR", "payee": "Initech", "reference": "INV-7"}},
			want: TaskView{Name: "transfer 9", Purpose: "approve transfer 9", Button: "Approve transfer",
				Done: "Transfer 9 was approved.", Summary: "1.00 EUR to Initech", Params: []TaskParam{{"reference", "INV-7"}}}},
		{name: "ok/transfer_without_payee_lists_params", give: token.Task{ID: "transfer-5", Action: "approve",
			Params: map[string]string{"currency": "EUR", "amount": "3.00"}},
			want: TaskView{Name: "transfer 5", Purpose: "approve transfer 5", Button: "Approve transfer",
				Done: "Transfer 5 was approved.", Params: []TaskParam{{"amount", "3.00"}, {"currency", "EUR"}}}},
		{name: "ok/other_task", give: token.Task{ID: "doc-7", Action: "sign", Params: map[string]string{"title": "Lease"}},
			want: TaskView{Name: "task doc-7", Purpose: "sign task doc-7", Button: "Confirm sign",
				Done: "Task doc-7 was completed.", Params: []TaskParam{{"title", "Lease"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, DescribeTask(tt.give))
		})
	}
}

func TestTaskName(t *testing.T) {
	for give, want := range map[string]string{
		"transfer-123":                     "transfer 123",
		"doc-7":                            "task doc-7",
		"transfer-":                        "task transfer-",
		"Your account is locked, call 555": "this task",
		"":                                 "this task",
		"<script>":                         "this task",
		"a-very-long-id-" + string(make([]byte, 60)): "this task",
	} {
		assert.Equal(t, want, TaskName(give), give)
	}
}
