package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"testing"
)

func TestVerify(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	input := "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJhbGljZSJ9"
	good := input + "." + base64.RawURLEncoding.EncodeToString(ed25519.Sign(priv, []byte(input)))
	tests := []struct {
		name string
		give string
		want bool
	}{
		{name: "ok/signed", give: good, want: true},
		{name: "fail/payload_changed", give: "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJib2IifQ" + good[len(input):]},
		{name: "fail/no_signature", give: input},
		{name: "fail/signature_not_base64url", give: input + ".***"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := verify(pub, tt.give); got != tt.want {
				t.Fatalf("verify(%q) = %v, want %v", tt.give, got, tt.want)
			}
		})
	}
}
