// Package cfssl renders what the CA host runs: the CFSSL API's signing
// configuration and its service definition — a systemd unit on Linux, an
// SMF manifest and method script on illumos. Pure functions: the playbook
// uploads the files and runs the commands Platform names.
package cfssl

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"text/template"
)

// Platform is where the CFSSL API lives on one OS, and how its service is
// managed there.
type Platform struct {
	OS        string // `uname -s`: Linux or SunOS
	Cfssl     string // the cfssl binary
	Cfssljson string // and its companion that splits its JSON into files
	ConfigDir string // signing config, CA material, auth key (0700)
	DataDir   string // the sqlite certificate database
	// ServiceFile is where the unit or the manifest goes; MethodFile is the
	// SMF start method (illumos only).
	ServiceFile string
	MethodFile  string
	User        string // the service's account; it must read ConfigDir
}

// ServiceName is the service as its manager names it: a systemd unit, or
// the SMF service (site/ is the namespace SMF keeps for local services).
const (
	SystemdUnit = "fleet-cfssl.service"
	SMFService  = "site/fleet-cfssl"
	SMFInstance = "svc:/" + SMFService + ":default"
)

// PlatformFor maps `uname -s` to the paths of that platform: Debian-style
// on Linux, OmniOS extra (/opt/ooce) on illumos.
func PlatformFor(unameS string) (Platform, error) {
	switch strings.TrimSpace(unameS) {
	case "Linux":
		return Platform{OS: "Linux", Cfssl: "/usr/local/bin/cfssl", Cfssljson: "/usr/local/bin/cfssljson", ConfigDir: "/etc/cfssl", DataDir: "/var/lib/cfssl",
			ServiceFile: "/etc/systemd/system/" + SystemdUnit, User: "root"}, nil
	case "SunOS":
		return Platform{OS: "SunOS", Cfssl: "/opt/ooce/bin/cfssl", Cfssljson: "/opt/ooce/bin/cfssljson", ConfigDir: "/etc/opt/ooce/cfssl", DataDir: "/var/opt/ooce/cfssl",
			ServiceFile: "/var/svc/manifest/site/fleet-cfssl.xml", MethodFile: "/lib/svc/method/fleet-cfssl", User: "root"}, nil
	}
	return Platform{}, fmt.Errorf("cfssl: no CA host support for OS %q (want Linux or SunOS/illumos)", unameS)
}

// Serve is how `cfssl serve` runs on the CA host.
type Serve struct {
	Address string // listen address, e.g. 198.18.0.16
	Port    int    // the API, 8888 by cfssl's convention
}

// Paths of the files in ConfigDir and DataDir that the service reads.
func (p Platform) Path(name string) string {
	switch name {
	case "certdb.db":
		return p.DataDir + "/" + name
	}
	return p.ConfigDir + "/" + name
}

var listenAddr = regexp.MustCompile(`^[0-9A-Za-z.:-]+$`)

// Args is the cfssl serve command line, one word each: the CA it signs
// with, the signing config, the certificate database and the OCSP signer,
// and every endpoint fleet does not use disabled.
func (p Platform) Args(s Serve) ([]string, error) {
	if !listenAddr.MatchString(s.Address) || s.Port < 1 || s.Port > 65535 {
		return nil, fmt.Errorf("cfssl: bad listen address %q port %d", s.Address, s.Port)
	}
	return []string{p.Cfssl, "serve",
		"-address=" + s.Address, "-port=" + strconv.Itoa(s.Port),
		"-ca=" + p.Path("ca.pem"), "-ca-key=" + p.Path("ca-key.pem"),
		"-config=" + p.Path("config.json"), "-db-config=" + p.Path("db-config.json"),
		"-responder=" + p.Path("ocsp.pem"), "-responder-key=" + p.Path("ocsp-key.pem"),
		DisableFlag,
	}, nil
}

// DisableFlag turns off every endpoint of cfssl serve (v1.6) but authsign,
// info and health. The auth key guards sign and authsign only: newcert
// signs any request it is sent, unauthenticated (a client certificate of
// O=system:masters from the cluster CA, for anyone who reaches the port);
// revoke, certadd and ocspsign change the certificate database or vouch
// for certificates, equally unauthenticated; the rest fleet never calls.
// cfssl has no allow-list: an endpoint a later version adds is on.
const DisableFlag = "-disable=sign,newcert,newkey,init_ca,bundle,scan,scaninfo,certinfo,ocspsign,revoke,gencrl,crl,certadd,/"

// Unit is the systemd unit for Linux CA hosts.
func (p Platform) Unit(s Serve) ([]byte, error) {
	args, err := p.Args(s)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	err = unitTemplate.Execute(&b, map[string]any{"Header": header, "Exec": strings.Join(args, " "), "User": p.User, "ConfigDir": p.ConfigDir})
	return b.Bytes(), err
}

const header = "Managed by fleet: changes here are overwritten by fleet apply."

// Every word of Exec passed Args' checks (paths fleet chose, a validated
// address): no quoting is needed in ExecStart.
var unitTemplate = template.Must(template.New("unit").Parse(`# {{.Header}}
[Unit]
Description=CFSSL API (fleet's cluster CA host)
After=network-online.target
Wants=network-online.target

[Service]
User={{.User}}
ExecStart={{.Exec}}
Restart=on-failure
RestartSec=2
UMask=0077
ReadOnlyPaths={{.ConfigDir}}

[Install]
WantedBy=multi-user.target
`))

// Method is the SMF start method for illumos: a shell script that starts
// cfssl in the background, as SMF's contract model expects of a method.
func (p Platform) Method(s Serve) ([]byte, error) {
	args, err := p.Args(s)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	err = methodTemplate.Execute(&b, map[string]any{"Header": header, "Exec": strings.Join(args, " "), "DataDir": p.DataDir})
	return b.Bytes(), err
}

var methodTemplate = template.Must(template.New("method").Parse(`#!/sbin/sh
# {{.Header}}
# SMF start method of svc:/site/fleet-cfssl: start the CFSSL API and
# return; svc.startd watches the process through its contract.
. /lib/svc/share/smf_include.sh

case "$1" in
start)
	umask 077
	{{.Exec}} >>{{.DataDir}}/cfssl.log 2>&1 &
	;;
*)
	echo "usage: $0 start" >&2
	exit $SMF_EXIT_ERR_CONFIG
	;;
esac
exit $SMF_EXIT_OK
`))

// Manifest is the SMF service manifest (service_bundle) for illumos:
// imported with svccfg import, enabled with svcadm enable.
func (p Platform) Manifest() ([]byte, error) {
	if p.MethodFile == "" {
		return nil, fmt.Errorf("cfssl: no SMF on %s", p.OS)
	}
	var b bytes.Buffer
	b.WriteString(xml.Header)
	b.WriteString(`<!DOCTYPE service_bundle SYSTEM "/usr/share/lib/xml/dtd/service_bundle.dtd.1">` + "\n")
	b.WriteString("<!-- " + header + " -->\n")
	err := manifestTemplate.Execute(&b, map[string]string{"Service": SMFService, "Method": p.MethodFile, "User": p.User})
	return b.Bytes(), err
}

// The elements in the order the DTD requires: dependencies, exec methods,
// property groups, then stability and template. The stop method :kill
// ends the contract's processes; duration "contract" (the default) keeps
// the service online while cfssl runs and restarts it when it dies.
var manifestTemplate = template.Must(template.New("manifest").Parse(`<service_bundle type="manifest" name="fleet-cfssl">
  <service name="{{.Service}}" type="service" version="1">
    <create_default_instance enabled="false"/>
    <single_instance/>
    <dependency name="network" grouping="require_all" restart_on="error" type="service">
      <service_fmri value="svc:/milestone/network:default"/>
    </dependency>
    <dependency name="filesystem" grouping="require_all" restart_on="error" type="service">
      <service_fmri value="svc:/system/filesystem/local:default"/>
    </dependency>
    <method_context>
      <method_credential user="{{.User}}" group="root"/>
    </method_context>
    <exec_method type="method" name="start" exec="{{.Method}} start" timeout_seconds="60"/>
    <exec_method type="method" name="stop" exec=":kill" timeout_seconds="60"/>
    <property_group name="startd" type="framework">
      <propval name="duration" type="astring" value="contract"/>
    </property_group>
    <stability value="Unstable"/>
    <template>
      <common_name>
        <loctext xml:lang="C">CFSSL API (fleet's cluster CA host)</loctext>
      </common_name>
    </template>
  </service>
</service_bundle>
`))
