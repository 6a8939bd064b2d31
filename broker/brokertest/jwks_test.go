package brokertest_test

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/handoffbroker/handoff/broker/brokertest"
)

// failT records the first Fatalf and stops the goroutine, as testing.T does.
type failT struct{ failed string }

func (*failT) Helper()        {}
func (*failT) Cleanup(func()) {}
func (f *failT) Fatalf(format string, args ...any) {
	f.failed = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func runFailT(fn func(brokertest.T)) string {
	f := &failT{}
	done := make(chan struct{})
	go func() { defer close(done); fn(f) }()
	<-done
	return f.failed
}

func TestPublicJWKS(t *testing.T) {
	is := brokertest.StartIssuer(t)
	published, err := is.Keyring().JWKS()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		giveDoc  []byte
		wantFail bool
	}{
		{name: "ok/issuer_jwks", giveDoc: published},
		{name: "fail/private_okp", giveDoc: []byte(`{"keys":[{"kty":"OKP","kid":"a","x":"AA","d":"AA"}]}`), wantFail: true},
		{name: "fail/symmetric", giveDoc: []byte(`{"keys":[{"kty":"oct","kid":"h","k":"AA"}]}`), wantFail: true},
		{name: "fail/not_json", giveDoc: []byte(`keys`), wantFail: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []map[string]any
			failed := runFailT(func(ft brokertest.T) { got = brokertest.PublicJWKS(ft, tt.giveDoc) })

			if tt.wantFail {
				if failed == "" {
					t.Fatalf("PublicJWKS accepted %s", tt.giveDoc)
				}
				return
			}
			if failed != "" || len(got) != 1 {
				t.Fatalf("PublicJWKS of the issuer's set: %q, %d keys", failed, len(got))
			}
		})
	}
}
