package inventory

import (
	"bytes"
	"fmt"
	"strings"
	"text/template"

	"gopkg.in/yaml.v3"
)

// Starter is what `fleet init` knows of a new cluster: enough for a first
// inventory that fleet check can reach.
type Starter struct {
	Name              string
	KubernetesVersion string
	LoadBalancer      string   // address
	Masters, Workers  []string // addresses; names are master0.., worker0..
	User              string   // ssh user ("" = root)
	IdentityFile      string   // "" = the agent's keys
}

// starterTemplate is the commented first inventory; every choice it does
// not make is shown, commented out, with its default.
var starterTemplate = template.Must(template.New("inventory").Funcs(template.FuncMap{"yaml": yamlString}).Parse(`# fleet inventory, written by fleet init. Next:
#   fleet check --accept-new-host-keys -i {{.Path}}   # reach every host, record its key
#   fleet plan -i {{.Path}}                           # what apply would do
#   fleet apply -i {{.Path}}

cluster:
  name: {{yaml .Name}}                       # a DNS label; names the cluster in kubeconfigs
  kubernetesVersion: {{.KubernetesVersion}}
  # podSubnet: 10.244.0.0/16        # must not overlap serviceSubnet or any host
  # serviceSubnet: 10.96.0.0/12
  # controlPlaneEndpoint: k8s-api.example.com:6443   # default: the load balancer, port 6443
  # network:                        # the pod network, applied after init: one of
  #   manifest: manifests/flannel.yaml  # a file or https URL
  #   cilium: {version: 1.18.4}          # Cilium's chart, no kube-proxy (see inventory/examples/cilium-bgp.yaml)
  # joinMode: kubeadm               # kubeadm, tls-bootstrap or cfssl (with a ca: host)

ssh:                                # for every host; a host's own ssh: overrides
  user: {{yaml .User}}{{if ne .User "root"}}
  sudo: true                        # a non-root user needs passwordless sudo{{end}}
{{- if .IdentityFile}}
  identityFile: {{yaml .IdentityFile}}{{else}}
  # identityFile: ~/.ssh/id_ed25519 # without it, the keys of ssh-agent{{end}}
  # knownHosts: ~/.ssh/known_hosts  # host keys are always verified
  # config: ~/.ssh/config           # Host blocks fill what this file leaves out; none for none

loadbalancer:                       # NGINX stream proxy in front of every master's :6443
  name: lb
  address: {{.LoadBalancer}}

masters:                            # an odd number: etcd quorum; kubeadm init runs on the first
{{- range $i, $a := .Masters}}
  - name: master{{$i}}
    address: {{$a}}
{{- end}}
{{if .Workers}}
workers:
{{- range $i, $a := .Workers}}
  - name: worker{{$i}}
    address: {{$a}}
{{- end}}
{{else}}
# workers:
#   - name: worker0
#     address: 192.0.2.21
{{end}}`))

// Render writes the starter inventory; path is where it will live (shown
// in its opening comment). The addresses are checked here; the whole
// document is checked by the caller loading it.
func (s Starter) Render(path string) ([]byte, error) {
	if s.User == "" {
		s.User = DefaultSSHUser
	}
	if s.Name == "" {
		s.Name = "cluster"
	}
	if len(s.Masters) == 0 {
		return nil, fmt.Errorf("fleet init: at least one master address (--masters)")
	}
	for _, a := range append(append([]string{s.LoadBalancer}, s.Masters...), s.Workers...) {
		if err := checkAddress(a); err != nil {
			return nil, fmt.Errorf("fleet init: %w", err)
		}
	}
	var b bytes.Buffer
	err := starterTemplate.Execute(&b, struct {
		Starter
		Path string
	}{s, path})
	return b.Bytes(), err
}

// yamlString is s as a YAML scalar, quoted where it must be.
func yamlString(s string) (string, error) {
	out, err := yaml.Marshal(s)
	return strings.TrimSuffix(string(out), "\n"), err
}
