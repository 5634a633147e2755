package nodeprep

import (
	"bytes"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
)

func TestPinnedKey(t *testing.T) {
	e, err := openpgp.NewEntity("repo", "", "repo@fleet.invalid", nil)
	if err != nil {
		t.Fatal(err)
	}
	var binary bytes.Buffer
	if err := e.Serialize(&binary); err != nil {
		t.Fatal(err)
	}
	var armored bytes.Buffer
	w, _ := armor.Encode(&armored, openpgp.PublicKeyType, nil)
	e.Serialize(w)
	w.Close()
	fp := strings.ToUpper(hex.EncodeToString(e.PrimaryKey.Fingerprint))
	spaced := strings.ToLower(fp[:4] + " " + fp[4:])

	for name, in := range map[string][]byte{"armored": armored.Bytes(), "binary": binary.Bytes()} {
		got, err := PinnedKey(in, spaced)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !bytes.HasPrefix(got, []byte("-----BEGIN PGP PUBLIC KEY BLOCK-----")) {
			t.Errorf("%s: not armored: %.40q", name, got)
		}
		again, err := PinnedKey(got, fp)
		if err != nil || !bytes.Equal(again, got) {
			t.Errorf("%s: the armored key does not read back the same: %v", name, err)
		}
	}
	_, err = PinnedKey(armored.Bytes(), KubernetesFingerprintForTest)
	if err == nil || !strings.Contains(err.Error(), "the key's fingerprint is "+fp+", the pinned one "+KubernetesFingerprintForTest) {
		t.Errorf("another key accepted or badly named: %v", err)
	}
	if _, err := PinnedKey([]byte("<html>mirror down</html>"), fp); err == nil || !strings.Contains(err.Error(), "not an OpenPGP public key") {
		t.Errorf("garbage: %v", err)
	}
}

// KubernetesFingerprintForTest is pkgs.k8s.io's key: any key made here is
// not it.
const KubernetesFingerprintForTest = "DE15B14486CD377B9E876E1A234654DA9A296436"
