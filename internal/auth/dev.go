package auth

// devSignatureHint ends the reason of a token whose signature does not verify against the random
// secret of a development run: the usual cause is a token from an earlier run.
const devSignatureHint = "; in development mode (REALTIME_JWT_SECRET unset) the signing secret changes at every start, " +
	"so tokens from an earlier run are refused: get a new one from GET /v1/dev/token?user=<id> " +
	"(the demo page does it when its Token field is empty)"

// NewDevelopmentVerifier returns a Verifier for the random secret a development run generates
// at start (REALTIME_JWT_SECRET unset). It verifies like NewVerifier's; a token whose signature
// does not verify gets an error that also says the secret changes at every start and where a
// new token comes from.
func NewDevelopmentVerifier(secret []byte) *Verifier {
	v := NewVerifier(secret)
	v.signatureHint = devSignatureHint
	return v
}
