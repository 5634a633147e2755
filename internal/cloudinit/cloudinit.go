// Package cloudinit renders cloud-init user-data (#cloud-config) that makes
// a new machine set itself up: files to write, then commands to run. Pure:
// the playbook decides what goes in.
package cloudinit

import (
	"bytes"
	"fmt"
	"path"
	"strings"

	"gopkg.in/yaml.v3"
)

// File is one write_files entry. Content is written as is (cloud-init's
// default text encoding).
type File struct {
	Path        string `yaml:"path"`
	Content     string `yaml:"content"`
	Permissions string `yaml:"permissions"` // octal, e.g. "0600"
	Owner       string `yaml:"owner"`
}

// Config is the user-data: files first, then commands, in order. Each
// command is an argv: cloud-init runs a list entry without a shell.
type Config struct {
	WriteFiles []File     `yaml:"write_files"`
	RunCmd     [][]string `yaml:"runcmd"`
}

// Render writes the #cloud-config document, with comment lines (the
// warnings a reader must see) at the top.
func Render(c Config, comment ...string) ([]byte, error) {
	for _, f := range c.WriteFiles {
		if !path.IsAbs(f.Path) || path.Clean(f.Path) != f.Path {
			return nil, fmt.Errorf("cloudinit: file path %q must be absolute and clean", f.Path)
		}
		if len(f.Permissions) != 4 || strings.Trim(f.Permissions, "01234567") != "" {
			return nil, fmt.Errorf("cloudinit: %s: permissions %q must be four octal digits", f.Path, f.Permissions)
		}
	}
	for _, argv := range c.RunCmd {
		if len(argv) == 0 {
			return nil, fmt.Errorf("cloudinit: an empty command")
		}
	}
	var b bytes.Buffer
	b.WriteString("#cloud-config\n")
	for _, line := range comment {
		for _, l := range strings.Split(line, "\n") {
			b.WriteString("# " + l + "\n")
		}
	}
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(c); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// Parse reads user-data back: what a test's small interpreter (or a
// reviewer) needs, with the same types.
func Parse(data []byte) (Config, error) {
	if !bytes.HasPrefix(data, []byte("#cloud-config\n")) {
		return Config{}, fmt.Errorf("cloudinit: user-data does not start with #cloud-config")
	}
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return Config{}, fmt.Errorf("cloudinit: %w", err)
	}
	return c, nil
}
