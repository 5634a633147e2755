package nodeprep

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
)

// PinnedKey checks that an OpenPGP public key (armored or binary) is the
// one fingerprint names, and returns it armored, as apt's signed-by reads
// a .asc file. A package repository's key fetched over the network is only
// trusted this way: whoever can change it on the way could sign packages.
func PinnedKey(data []byte, fingerprint string) ([]byte, error) {
	ring, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(data))
	if err != nil {
		if ring, err = openpgp.ReadKeyRing(bytes.NewReader(data)); err != nil {
			return nil, fmt.Errorf("not an OpenPGP public key: %w", err)
		}
	}
	want := strings.ToUpper(strings.ReplaceAll(fingerprint, " ", ""))
	var got []string
	for _, e := range ring {
		fp := strings.ToUpper(hex.EncodeToString(e.PrimaryKey.Fingerprint))
		got = append(got, fp)
		if fp != want {
			continue
		}
		var out bytes.Buffer
		w, err := armor.Encode(&out, openpgp.PublicKeyType, nil)
		if err != nil {
			return nil, err
		}
		if err := e.Serialize(w); err != nil {
			return nil, err
		}
		if err := w.Close(); err != nil {
			return nil, err
		}
		out.WriteByte('\n')
		return out.Bytes(), nil
	}
	return nil, fmt.Errorf("the key's fingerprint is %s, the pinned one %s", strings.Join(got, ", "), want)
}
