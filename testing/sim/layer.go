package sim

import (
	"fmt"
	"os"
	"path/filepath"
)

// nodeBinaries says where a package would put each binary the tools build
// makes, relative to /usr.
var nodeBinaries = map[string]string{
	"kubeadm": "bin", "kubelet": "bin", "kubectl": "bin",
	"kube-apiserver": "local/bin", "kube-controller-manager": "local/bin", "kube-scheduler": "local/bin",
	"etcd": "local/bin", "etcdutl": "local/bin", "sim-containerd": "local/bin", "sim-dockerd": "local/bin",
	"cfssl": "local/bin", "cfssljson": "local/bin",
}

// InstallLayer lays the binaries of binDir (testing/tools/build.sh output)
// out as a /usr layer in layerDir, with hard links, so that hosts booted with
// Topology.Tools = layerDir find them where packages put them.
func InstallLayer(binDir, layerDir string) error {
	if err := os.RemoveAll(layerDir); err != nil {
		return err
	}
	for name, sub := range nodeBinaries {
		src := filepath.Join(binDir, name)
		if _, err := os.Stat(src); err != nil {
			return fmt.Errorf("sim: %s missing from %s (make sim-tools): %w", name, binDir, err)
		}
		dst := filepath.Join(layerDir, sub, name)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if err := os.Link(src, dst); err != nil {
			return fmt.Errorf("sim: link %s: %w", name, err)
		}
	}
	return nil
}
