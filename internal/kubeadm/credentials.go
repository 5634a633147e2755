package kubeadm

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"regexp"
)

// Token is a bootstrap token: a public ID and a secret.
type Token struct {
	ID, Secret string
}

func (t Token) String() string { return t.ID + "." + t.Secret }

var tokenRe = regexp.MustCompile(`^([a-z0-9]{6})\.([a-z0-9]{16})$`)

// ParseToken reads "abcdef.0123456789abcdef".
func ParseToken(s string) (Token, error) {
	m := tokenRe.FindStringSubmatch(s)
	if m == nil {
		return Token{}, fmt.Errorf("kubeadm: %q is not a bootstrap token ([a-z0-9]{6}.[a-z0-9]{16})", redactedToken(s))
	}
	return Token{ID: m[1], Secret: m[2]}, nil
}

func redactedToken(s string) string {
	if len(s) > 7 {
		return s[:7] + "…"
	}
	return s
}

const tokenChars = "abcdefghijklmnopqrstuvwxyz0123456789"

// NewToken makes a random bootstrap token.
func NewToken() (Token, error) {
	id, err := randomString(6)
	if err != nil {
		return Token{}, err
	}
	secret, err := randomString(16)
	if err != nil {
		return Token{}, err
	}
	return Token{ID: id, Secret: secret}, nil
}

func randomString(n int) (string, error) {
	out := make([]byte, n)
	buf := make([]byte, 1)
	for i := 0; i < n; {
		if _, err := rand.Read(buf); err != nil {
			return "", err
		}
		// Reject the top of the byte range so every character is equally likely.
		if int(buf[0]) >= 256-(256%len(tokenChars)) {
			continue
		}
		out[i] = tokenChars[int(buf[0])%len(tokenChars)]
		i++
	}
	return string(out), nil
}

// NewCertificateKey makes the AES-256 key kubeadm encrypts uploaded
// control-plane certificates with: 32 random bytes, hex-encoded.
func NewCertificateKey() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// CAHash is kubeadm's discovery hash of a CA certificate: "sha256:" and the
// SHA-256 of the certificate's DER SubjectPublicKeyInfo.
func CAHash(caPEM []byte) (string, error) {
	block, _ := pem.Decode(caPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return "", fmt.Errorf("kubeadm: CA certificate is not PEM")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return "", fmt.Errorf("kubeadm: CA certificate: %w", err)
	}
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}
