package cfssl

import (
	"encoding/json"
	"fmt"
	"strings"
)

// The CA host's material, in ConfigDir: a root (supplied by the user or
// generated on the CA host with an explicit flag), the intermediate that
// is the Kubernetes cluster CA (kubeadm finds it as ca.crt/ca.key; cfssl
// serve signs the kubelets' certificates with it), and the OCSP signer.
// Keys are made on the CA host and never leave it, except the cluster CA's,
// which kubeadm needs on the first master.
const (
	RootCert = "root.pem"
	RootKey  = "root-key.pem"
	CACert   = "ca.pem"
	CAKey    = "ca-key.pem"
	OCSPCert = "ocsp.pem"
	AuthFile = "auth-key" // the hex HMAC key, 0600
	// MaterialConfigFile holds the profiles the material script signs
	// with; the API's config.json does not have them.
	MaterialConfigFile = "material-config.json"
)

// CSRs returns the certificate requests the material script signs, by file
// name: the root (only used when fleet generates it), the cluster CA (CN
// "kubernetes", as kubeadm names its own) and the OCSP signer.
func CSRs(cluster string) (map[string][]byte, error) {
	type key struct {
		Algo string `json:"algo"`
		Size int    `json:"size"`
	}
	type name struct {
		O  string `json:"O,omitempty"`
		OU string `json:"OU,omitempty"`
	}
	type csr struct {
		CN    string            `json:"CN"`
		Key   key               `json:"key"`
		Names []name            `json:"names,omitempty"`
		CA    map[string]string `json:"ca,omitempty"`
	}
	reqs := map[string]csr{
		"root-csr.json": {CN: "fleet root CA " + cluster, Key: key{"ecdsa", 384}, Names: []name{{O: "fleet", OU: cluster}},
			CA: map[string]string{"expiry": "87600h"}},
		// RSA: what kubeadm makes and every client of the API accepts.
		"ca-csr.json":   {CN: "kubernetes", Key: key{"rsa", 2048}, Names: []name{{O: "fleet", OU: cluster}}},
		"ocsp-csr.json": {CN: "fleet OCSP signer " + cluster, Key: key{"ecdsa", 256}, Names: []name{{O: "fleet", OU: cluster}}},
	}
	out := map[string][]byte{}
	for file, r := range reqs {
		b, err := json.MarshalIndent(r, "", "  ")
		if err != nil {
			return nil, err
		}
		out[file] = append(b, '\n')
	}
	return out, nil
}

// The material script's exit codes beyond failure.
const (
	// MaterialExitNoRoot: the CA host has no root, and fleet may not make
	// one there.
	MaterialExitNoRoot = 4
	// MaterialExitSignCSR: the cluster CA's key and request (CARequest)
	// are made and wait for the root's signature, off the host; fleet
	// uploads the certificate as CASigned and runs the script again.
	MaterialExitSignCSR = 5
)

// The cluster CA between the material script's two runs when the root
// stays off the host.
const (
	CARequest = "ca.tmp.csr"
	CASigned  = "ca.tmp.pem"
)

// Where the root is, for the material script ($1).
const (
	RootOffHost    = "offhost"      // the operator's machine signs the cluster CA's request
	RootMakeOnHost = "make-on-host" // the seed's homelab layout: made here, key kept here
	RootOnHost     = "on-host"      // the host has its root (and key) already, or needs none
)

// MaterialScript makes what is missing of the material, in ConfigDir, with
// the host's cfssl: the cluster CA (key and request made here, signed by
// the root: off the host with RootOffHost, here when the root's key is
// here), the root itself only with RootMakeOnHost, the OCSP signer signed
// by the cluster CA (profile ocsp), and the sqlite database with its
// schema ($2, the schema file). Each pair is written under a temporary
// name and renamed key first, certificate last: a certificate present
// means its key is too, so an interrupted run is finished by the next.
func (p Platform) MaterialScript() string {
	var b strings.Builder
	b.WriteString("set -e\numask 077\n")
	if p.OS == "SunOS" {
		b.WriteString("PATH=/opt/ooce/bin:$PATH; export PATH\n")
	}
	fmt.Fprintf(&b, "cfssl=%s cfssljson=%s\n", p.Cfssl, p.Cfssljson)
	fmt.Fprintf(&b, "cd %s\n", p.ConfigDir)
	// pair NAME: move NAME.tmp's output into place, key first.
	b.WriteString(`pair() { mv -f "$1.tmp-key.pem" "$1-key.pem"; mv -f "$1.tmp.pem" "$1.pem"; rm -f "$1.tmp.csr"; }
if [ ! -s ` + RootCert + ` ]; then
	if [ "$1" != ` + RootMakeOnHost + ` ]; then echo "no root CA in ` + p.ConfigDir + `" >&2; exit ` + fmt.Sprint(MaterialExitNoRoot) + `; fi
	"$cfssl" gencert -initca root-csr.json | "$cfssljson" -bare root.tmp
	pair root
fi
if [ ! -s ` + CACert + ` ]; then
	if [ -s ` + CASigned + ` ] && [ -s ca.tmp-key.pem ]; then
		pair ca
	elif [ -s ` + RootKey + ` ]; then
		"$cfssl" genkey ca-csr.json | "$cfssljson" -bare ca.tmp
		"$cfssl" sign -ca ` + RootCert + ` -ca-key ` + RootKey + ` -config ` + MaterialConfigFile + ` -profile ` + ProfileIntermediate + ` ` + CARequest + ` | "$cfssljson" -bare ca.tmp
		pair ca
	elif [ "$1" = ` + RootOffHost + ` ]; then
		if [ ! -s ca.tmp-key.pem ] || [ ! -s ` + CARequest + ` ]; then
			"$cfssl" genkey ca-csr.json | "$cfssljson" -bare ca.tmp
		fi
		exit ` + fmt.Sprint(MaterialExitSignCSR) + `
	else
		echo "no root CA key to sign the cluster CA with in ` + p.ConfigDir + `" >&2; exit ` + fmt.Sprint(MaterialExitNoRoot) + `
	fi
fi
if [ ! -s ` + OCSPCert + ` ]; then
	"$cfssl" gencert -ca ` + CACert + ` -ca-key ` + CAKey + ` -config ` + MaterialConfigFile + ` -profile ` + ProfileOCSP + ` ocsp-csr.json | "$cfssljson" -bare ocsp.tmp
	pair ocsp
fi
`)
	fmt.Fprintf(&b, "mkdir -p %s\nsqlite3 %s < \"$2\"\n", p.DataDir, p.Path("certdb.db"))
	return b.String()
}

// StartScript (re)starts the API with its current files: through systemd
// on Linux (or, on a host without an init system, as a supervised-by-
// nobody daemon with a pid file), through SMF on illumos ($1 is the
// manifest there: validated, imported, then the instance enabled,
// restarted, or cleared out of maintenance).
func (p Platform) StartScript(s Serve) (string, error) {
	args, err := p.Args(s)
	if err != nil {
		return "", err
	}
	if p.OS == "SunOS" {
		return `set -e
svccfg validate "$1"
svccfg import "$1"
state=$(svcs -H -o state ` + SMFInstance + ` 2>/dev/null || true)
case "$state" in
online) svcadm restart ` + SMFInstance + ` ;;
maintenance) svcadm clear ` + SMFInstance + `; svcadm enable -s ` + SMFInstance + ` ;;
*) svcadm enable -s ` + SMFInstance + ` ;;
esac
`, nil
	}
	return `set -e
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload
	systemctl enable ` + SystemdUnit + `
	systemctl restart ` + SystemdUnit + `
	exit 0
fi
pidfile=` + NoInitPidFile + `
if [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
	pid=$(cat "$pidfile"); kill "$pid"
	i=0; while kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
fi
umask 077
setsid ` + strings.Join(args, " ") + ` >>` + p.DataDir + `/cfssl.log 2>&1 </dev/null &
echo $! > "$pidfile"
`, nil
}

// NoInitPidFile records the API's process on a Linux host without systemd.
const NoInitPidFile = "/run/fleet-cfssl.pid"
