package brokertest

import "encoding/json"

// privateMembers are the JWK members that hold secrets (RFC 7518 §6.2.2,
// §6.3.2 and §6.4.1): an "oct" key's "k", and the private parts of EC, OKP
// and RSA keys.
var privateMembers = []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"}

// PublicJWKS decodes the JWK Set doc, as an issuer publishes it, and returns
// its keys as JSON objects. It fails t unless doc is a JWK Set whose keys
// hold no private member: a published set that leaked one would hand out
// the signing key.
func PublicJWKS(t T, doc []byte) []map[string]any {
	t.Helper()
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(doc, &set); err != nil {
		t.Fatalf("not a JWK Set: %v", err)
	}
	for _, k := range set.Keys {
		for _, m := range privateMembers {
			if _, ok := k[m]; ok {
				t.Fatalf("JWK %v has the private member %q", k["kid"], m)
			}
		}
	}
	return set.Keys
}
