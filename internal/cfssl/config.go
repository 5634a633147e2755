package cfssl

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"
)

// AuthKeyName is the name the signing config gives fleet's auth key. Every
// profile requires it: an unauthenticated /sign is refused, so only
// /authsign (HMAC over the request with the key) issues certificates.
const AuthKeyName = "fleet"

// NewAuthKey makes a standard CFSSL auth key: 16 random bytes, hex, as
// cfssl's "standard" HMAC provider takes them.
func NewAuthKey() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// Profile names the signing config offers (seed 000).
const (
	ProfileKubelet      = "kubelet"
	ProfileClient       = "client"
	ProfileWWW          = "www"
	ProfileIntermediate = "intermediate"
	ProfileOCSP         = "ocsp"
)

// Signing is what the signing config needs beyond the profiles' fixed usages.
type Signing struct {
	Expiry   time.Duration // leaf certificates (default 8760h)
	CAExpiry time.Duration // intermediate CAs (default 43800h)
	OCSPURL  string        // the responder, written into issued certificates; "" for none
}

type profile struct {
	Usages       []string      `json:"usages"`
	Expiry       string        `json:"expiry"`
	AuthKey      string        `json:"auth_key"`
	OCSPURL      string        `json:"ocsp_url,omitempty"`
	CAConstraint *caConstraint `json:"ca_constraint,omitempty"`
}

type caConstraint struct {
	IsCA           bool `json:"is_ca"`
	MaxPathLen     int  `json:"max_path_len"`
	MaxPathLenZero bool `json:"max_path_len_zero"`
}

type authKey struct {
	Type string `json:"type"`
	Key  string `json:"key"`
}

// Config renders config.json for `cfssl serve`. The auth key is not in it:
// the config points at keyFile ("file:" reference), which the caller writes
// 0600, so the config can be shown and diffed without leaking the key.
func Config(s Signing, keyFile string) ([]byte, error) {
	if keyFile == "" {
		return nil, fmt.Errorf("cfssl: no auth key file")
	}
	leaf, ca := s.Expiry, s.CAExpiry
	if leaf == 0 {
		leaf = 8760 * time.Hour
	}
	if ca == 0 {
		ca = 43800 * time.Hour
	}
	if leaf < time.Hour || ca < time.Hour {
		return nil, fmt.Errorf("cfssl: expiries %s and %s: want at least 1h", leaf, ca)
	}
	mk := func(expiry time.Duration, usages ...string) profile {
		return profile{Usages: usages, Expiry: hours(expiry), AuthKey: AuthKeyName, OCSPURL: s.OCSPURL}
	}
	profiles := map[string]profile{
		// A kubelet's certificate serves its API and authenticates it to
		// the API server as system:node:<name>.
		ProfileKubelet: mk(leaf, "signing", "digital signature", "key encipherment", "client auth", "server auth"),
		ProfileClient:  mk(leaf, "signing", "digital signature", "key encipherment", "client auth"),
		ProfileWWW:     mk(leaf, "signing", "digital signature", "key encipherment", "server auth"),
		ProfileOCSP:    mk(leaf, "digital signature", "ocsp signing"),
	}
	inter := mk(ca, "cert sign", "crl sign")
	inter.CAConstraint = &caConstraint{IsCA: true, MaxPathLen: 0, MaxPathLenZero: true}
	profiles[ProfileIntermediate] = inter

	doc := map[string]any{
		"signing": map[string]any{
			"default":  mk(leaf, "signing", "digital signature", "key encipherment", "client auth"),
			"profiles": profiles,
		},
		"auth_keys": map[string]authKey{AuthKeyName: {Type: "standard", Key: "file:" + keyFile}},
	}
	out, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}

// DBConfig renders db-config.json: the sqlite certificate database.
func DBConfig(path string) ([]byte, error) {
	out, err := json.MarshalIndent(map[string]string{"driver": "sqlite3", "data_source": path}, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}

// hours writes d as cfssl reads expiries: a Go duration in whole hours.
func hours(d time.Duration) string {
	return fmt.Sprintf("%dh", int64(d/time.Hour))
}
