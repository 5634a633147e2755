package sim

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/fleetops/fleet/internal/binaries"
)

// nodeBinaries says where a package would put each binary the tools build
// makes, relative to /usr.
var nodeBinaries = map[string]string{
	"kubeadm": "bin", "kubelet": "bin", "kubectl": "bin",
	"kube-apiserver": "local/bin", "kube-controller-manager": "local/bin", "kube-scheduler": "local/bin",
	"etcd": "local/bin", "etcdutl": "local/bin", "sim-containerd": "local/bin", "sim-dockerd": "local/bin",
	"cfssl": "local/bin", "cfssljson": "local/bin",
}

// imageBinaries are what a container registry would hand a bare host's
// runtime: the control plane's images, run by the emulated kubelet as
// processes. A bare host has these and nothing else of Kubernetes.
var imageBinaries = []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd", "etcdutl"}

// airgapBinaries are the files of the air-gapped folder fleet installs
// from (install: binaries), by their name there: the node's Kubernetes
// binaries and the emulated container runtime as containerd.
var airgapBinaries = map[string]string{"kubeadm": "kubeadm", "kubelet": "kubelet", "kubectl": "kubectl", "containerd": "sim-containerd"}

// ImagesLayer is the /usr layer of bare hosts (Topology.Bare) beside the
// full layer: the control-plane images only.
func ImagesLayer(layer string) string { return layer + "-images" }

// ImagesDir is where a layer unpacks the control-plane images of the
// other Kubernetes versions the tools build made (build.sh's OUTDIR/VERSION
// folders), one folder per tag, relative to /usr. The emulated kubelet runs
// a static pod whose image has such a tag from there (the upgrade tests'
// next version), any other from PATH.
const ImagesDir = "local/lib/fleet-sim/images"

// NextVersion is the Kubernetes version the upgrade tests move a cluster
// to: testing/tools/kubernetes-next's.
const NextVersion = "v1.35.4"

// AirgapFolderOf is the air-gapped folder of version's node binaries:
// AirgapFolder's for KubernetesVersion, one beside it for each other.
func AirgapFolderOf(layer, version string) string {
	if version == KubernetesVersion {
		return AirgapFolder(layer)
	}
	return AirgapFolder(layer) + "-" + version
}

// AirgapFolder is the folder of node binaries with their SHA256SUMS beside
// the full layer, as an operator would bring it to an air-gapped site.
func AirgapFolder(layer string) string { return layer + "-airgap" }

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
	images := ImagesLayer(layerDir)
	if err := os.RemoveAll(images); err != nil {
		return err
	}
	for _, name := range imageBinaries {
		dst := filepath.Join(images, nodeBinaries[name], name)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if err := os.Link(filepath.Join(binDir, name), dst); err != nil {
			return fmt.Errorf("sim: link %s: %w", name, err)
		}
	}
	// The emulated runtime, off the PATH: the host's init runs it in
	// place of a containerd a package installed (which cannot run here).
	emulated := filepath.Join(images, "libexec/fleet-sim/containerd")
	if err := os.MkdirAll(filepath.Dir(emulated), 0o755); err != nil {
		return err
	}
	if err := os.Link(filepath.Join(binDir, "sim-containerd"), emulated); err != nil {
		return fmt.Errorf("sim: link the emulated runtime: %w", err)
	}
	if err := writeAirgap(binDir, binDir, AirgapFolder(layerDir)); err != nil {
		return err
	}
	return installOtherVersions(binDir, layerDir)
}

// installOtherVersions lays out each other version's folder of binDir:
// its control-plane images under ImagesDir of both layers, and its node
// binaries as an air-gapped folder (the runtime stays this version's).
func installOtherVersions(binDir, layerDir string) error {
	versions, err := filepath.Glob(filepath.Join(binDir, "v*"))
	if err != nil {
		return err
	}
	for _, dir := range versions {
		version := filepath.Base(dir)
		for _, layer := range []string{layerDir, ImagesLayer(layerDir)} {
			for _, name := range []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler"} {
				dst := filepath.Join(layer, ImagesDir, version, name)
				if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
					return err
				}
				if err := os.Link(filepath.Join(dir, name), dst); err != nil {
					return fmt.Errorf("sim: link %s %s: %w", version, name, err)
				}
			}
		}
		if err := writeAirgap(dir, binDir, AirgapFolderOf(layerDir, version)); err != nil {
			return err
		}
	}
	return nil
}

// writeAirgap links the node binaries of kubeDir (kubeadm, kubelet,
// kubectl) and the runtime of binDir into dir and writes their SHA256SUMS,
// as sha256sum would.
func writeAirgap(kubeDir, binDir, dir string) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var names []string
	for name := range airgapBinaries {
		names = append(names, name)
	}
	sort.Strings(names)
	var sums strings.Builder
	for _, name := range names {
		dst := filepath.Join(dir, name)
		from := kubeDir
		if name == "containerd" {
			from = binDir
		}
		if err := os.Link(filepath.Join(from, airgapBinaries[name]), dst); err != nil {
			return fmt.Errorf("sim: link %s: %w", name, err)
		}
		sum, err := binaries.FileSHA256(dst)
		if err != nil {
			return err
		}
		fmt.Fprintf(&sums, "%s  %s\n", sum, name)
	}
	return os.WriteFile(filepath.Join(dir, "SHA256SUMS"), []byte(sums.String()), 0o644)
}
