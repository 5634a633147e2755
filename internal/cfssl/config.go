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

// Profile names: the API offers the kubelet's only; the material script
// signs the cluster CA and the OCSP signer with the others, locally. (The
// seed's client and www profiles are gone: with the cluster CA, a client
// certificate in O=system:masters is cluster-admin.)
const (
	ProfileKubelet      = "kubelet"
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
	Usages        []string      `json:"usages"`
	Expiry        string        `json:"expiry"`
	AuthKey       string        `json:"auth_key,omitempty"`
	OCSPURL       string        `json:"ocsp_url,omitempty"`
	NameWhitelist string        `json:"name_whitelist,omitempty"`
	CAConstraint  *caConstraint `json:"ca_constraint,omitempty"`
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

// NodeNames is the kubelet profile's name whitelist: the certificate's CN
// must be system:node:<name> and every DNS name a node name. The auth key
// signs nothing else: no other CN, no client or CA certificate.
const NodeNames = `^(system:node:)?[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`

func (s Signing) expiries() (leaf, ca time.Duration, err error) {
	leaf, ca = s.Expiry, s.CAExpiry
	if leaf == 0 {
		leaf = 8760 * time.Hour
	}
	if ca == 0 {
		ca = 43800 * time.Hour
	}
	if leaf < time.Hour || ca < time.Hour {
		return 0, 0, fmt.Errorf("cfssl: expiries %s and %s: want at least 1h", leaf, ca)
	}
	return leaf, ca, nil
}

// Config renders config.json for `cfssl serve`: one profile, the
// kubelet's, which is also the default, signs with the cluster CA and only
// with the auth key (an unauthenticated /sign is refused, so only
// /authsign issues certificates), and only node names. The auth key is not
// in the file: it points at keyFile ("file:" reference), which the caller
// writes 0600, so the config can be shown and diffed without leaking it.
func Config(s Signing, keyFile string) ([]byte, error) {
	if keyFile == "" {
		return nil, fmt.Errorf("cfssl: no auth key file")
	}
	leaf, _, err := s.expiries()
	if err != nil {
		return nil, err
	}
	// A kubelet's certificate serves its API and authenticates it to the
	// API server as system:node:<name>.
	kubelet := profile{Usages: []string{"signing", "digital signature", "key encipherment", "client auth", "server auth"},
		Expiry: hours(leaf), AuthKey: AuthKeyName, OCSPURL: s.OCSPURL, NameWhitelist: NodeNames}
	return render(map[string]any{
		"signing":   map[string]any{"default": kubelet, "profiles": map[string]profile{ProfileKubelet: kubelet}},
		"auth_keys": map[string]authKey{AuthKeyName: {Type: "standard", Key: "file:" + keyFile}},
	})
}

// MaterialConfig renders material-config.json, which only the material
// script reads, signing on the CA host with the files themselves: the
// cluster CA from the root (profile intermediate: a CA that signs leaves
// only) and the OCSP signer. The API never serves these profiles.
func MaterialConfig(s Signing) ([]byte, error) {
	leaf, ca, err := s.expiries()
	if err != nil {
		return nil, err
	}
	inter := profile{Usages: []string{"cert sign", "crl sign"}, Expiry: hours(ca),
		CAConstraint: &caConstraint{IsCA: true, MaxPathLen: 0, MaxPathLenZero: true}}
	ocsp := profile{Usages: []string{"digital signature", "ocsp signing"}, Expiry: hours(leaf)}
	return render(map[string]any{"signing": map[string]any{
		"default":  ocsp,
		"profiles": map[string]profile{ProfileIntermediate: inter, ProfileOCSP: ocsp},
	}})
}

func render(doc map[string]any) ([]byte, error) {
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
