package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
)

// MinRSABits is the smallest RSA key accepted, from a PEM file or a JWKS (RFC 7518 §3.3: "A key
// of size 2048 bits or larger MUST be used").
const MinRSABits = 2048

// hmacMinBytes is the smallest secret each HMAC algorithm accepts: the size of its hash output
// (RFC 7518 §3.2). REALTIME_JWT_SECRET holds at least 32 bytes, so HS256 always fits.
var hmacMinBytes = map[string]int{"HS256": 32, "HS384": 48, "HS512": 64}

// validMethods are every alg a token may name; which one a key verifies is pinned by pinAlg.
var validMethods = []string{
	"HS256", "HS384", "HS512",
	"RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
	"ES256", "ES384", "ES512",
	"EdDSA",
}

// keyError is why no key verifies a token (wrong algorithm for the key, unknown kid, no key
// source for the algorithm); Verify reports its text as the reason.
type keyError struct{ reason string }

func (e *keyError) Error() string { return e.reason }

// pinAlg returns key if a token signed with alg may be verified with it, an error otherwise: the
// algorithm is fixed by the key's type, never chosen by the token (RFC 8725 §2.1 and §3.1), so an
// RSA public key is never used as an HMAC secret. RSA keys verify RS256/384/512 and PS256/384/512;
// EC keys ES256 on P-256, ES384 on P-384, ES512 on P-521 (RFC 7518 §3.4); Ed25519 keys EdDSA
// (RFC 8037 §3.1). Any other key type verifies nothing.
func pinAlg(key crypto.PublicKey, alg string) (crypto.PublicKey, error) {
	ok := false
	switch k := key.(type) {
	case *rsa.PublicKey:
		switch alg {
		case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
			ok = k.N.BitLen() >= MinRSABits
		}
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			ok = alg == "ES256"
		case elliptic.P384():
			ok = alg == "ES384"
		case elliptic.P521():
			ok = alg == "ES512"
		}
	case ed25519.PublicKey:
		ok = alg == "EdDSA"
	}
	if !ok {
		return nil, &keyError{fmt.Sprintf("alg %s does not fit the %s key (RFC 8725 §3.1: the key fixes the algorithm)", alg, keyType(key))}
	}
	return key, nil
}

// keyType names a key's type for messages: "RSA-2048", "EC P-256", "Ed25519".
func keyType(key crypto.PublicKey) string {
	switch k := key.(type) {
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA-%d", k.N.BitLen())
	case *ecdsa.PublicKey:
		return "EC " + k.Curve.Params().Name
	case ed25519.PublicKey:
		return "Ed25519"
	case []byte:
		return "symmetric"
	default:
		return fmt.Sprintf("%T", key)
	}
}

// usableKey reports whether key may verify tokens: an RSA key of at least MinRSABits, an EC key
// on P-256, P-384 or P-521, or an Ed25519 key. The error says why not.
func usableKey(key crypto.PublicKey) error {
	switch k := key.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < MinRSABits {
			return fmt.Errorf("an RSA key of %d bits: at least %d are required (RFC 7518 §3.3)", k.N.BitLen(), MinRSABits)
		}
		return nil
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
			return nil
		}
		return fmt.Errorf("an EC key on %s: P-256, P-384 or P-521 are accepted", k.Curve.Params().Name)
	case ed25519.PublicKey:
		return nil
	}
	return fmt.Errorf("a %s key: RSA, EC (P-256, P-384, P-521) or Ed25519 public keys are accepted", keyType(key))
}

// ParsePublicKeyPEM returns the public key of the first PEM block of data (the content of
// REALTIME_JWT_PUBLIC_KEY_FILE): a "PUBLIC KEY" (PKIX, RFC 5280: RSA, EC or Ed25519), an
// "RSA PUBLIC KEY" (PKCS #1) or a "CERTIFICATE" (its subject's key, as identity providers show
// it; the certificate's dates and issuer are not checked). The key must pass the checks of the
// verifier: RSA of at least MinRSABits, EC on P-256/P-384/P-521, or Ed25519. A private key is
// refused, with a message saying so.
func ParsePublicKeyPEM(data []byte) (crypto.PublicKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM block (want -----BEGIN PUBLIC KEY-----)")
	}
	var key crypto.PublicKey
	var err error
	switch block.Type {
	case "PUBLIC KEY":
		key, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		key, err = x509.ParsePKCS1PublicKey(block.Bytes)
	case "CERTIFICATE":
		var cert *x509.Certificate
		if cert, err = x509.ParseCertificate(block.Bytes); err == nil {
			key = cert.PublicKey
		}
	case "PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY", "ENCRYPTED PRIVATE KEY":
		return nil, fmt.Errorf("a %s block: give the public key (openssl pkey -pubout), the private key stays with the token issuer", block.Type)
	default:
		return nil, fmt.Errorf("a %q PEM block: want PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE", block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("%s block: %w", block.Type, err)
	}
	if err := usableKey(key); err != nil {
		return nil, err
	}
	return key, nil
}
