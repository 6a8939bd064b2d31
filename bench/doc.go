// Package bench holds the benchmark peers SERVER2 is measured against and
// the command that runs the comparison (`make compare`). Nothing here is
// product code: the peers check less than SERVER2 on purpose and must not
// be deployed. The module is separate so that their dependencies
// (golang-jwt, keyfunc) stay out of the product's go.mod.
//
//   - floor: net/http parses the form, one raw ed25519.Verify, 303.
//   - peer: the same job written the usual way, with echo v4, golang-jwt v5
//     and keyfunc v3.
//   - compare: builds and pins everything and prints the table of
//     docs/BENCHMARKS.md.
package bench
