package sim

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"strconv"

	"gopkg.in/yaml.v3"
)

// RunCloudConfig does on host name what cloud-init would do with the
// write_files and runcmd of userData, without cloud-init (which the test
// bed does not have): each file written with its permissions, then each
// command run in order, as root on the host. A list command runs without
// a shell, a string one with sh -c, as cloud-init runs them. Any other
// module in the user-data is an error: a test must not pass because a part
// of the document went unread. The parsing is this package's own, not
// fleet's.
func (c *Cluster) RunCloudConfig(name string, userData []byte) error {
	if !bytes.HasPrefix(userData, []byte("#cloud-config\n")) {
		return fmt.Errorf("sim: user-data does not start with #cloud-config")
	}
	var doc map[string]any
	if err := yaml.Unmarshal(userData, &doc); err != nil {
		return fmt.Errorf("sim: user-data: %w", err)
	}
	for key := range doc {
		if key != "write_files" && key != "runcmd" {
			return fmt.Errorf("sim: user-data module %q is not interpreted here", key)
		}
	}
	files, _ := doc["write_files"].([]any)
	for i, f := range files {
		entry, ok := f.(map[string]any)
		if !ok {
			return fmt.Errorf("sim: write_files[%d] is not a mapping", i)
		}
		path, _ := entry["path"].(string)
		content, _ := entry["content"].(string)
		perms, _ := entry["permissions"].(string)
		if perms == "" {
			perms = "0644" // cloud-init's default
		}
		if _, err := strconv.ParseUint(perms, 8, 32); err != nil || path == "" {
			return fmt.Errorf("sim: write_files[%d]: path %q permissions %q", i, path, perms)
		}
		data := []byte(content)
		if enc, _ := entry["encoding"].(string); enc == "b64" || enc == "base64" {
			var err error
			if data, err = base64.StdEncoding.DecodeString(content); err != nil {
				return fmt.Errorf("sim: write_files[%d]: %w", i, err)
			}
		}
		script := `umask 077; mkdir -p "$(dirname "$1")" && printf %s "$2" | base64 -d > "$1" && chmod "$3" "$1"`
		if _, err := c.Exec(name, "sh", "-c", script, "write_files", path, base64.StdEncoding.EncodeToString(data), perms); err != nil {
			return err
		}
	}
	cmds, _ := doc["runcmd"].([]any)
	for i, cmd := range cmds {
		var argv []string
		switch v := cmd.(type) {
		case string:
			argv = []string{"sh", "-c", v}
		case []any:
			for _, a := range v {
				s, ok := a.(string)
				if !ok {
					return fmt.Errorf("sim: runcmd[%d]: %v is not a string", i, a)
				}
				argv = append(argv, s)
			}
		default:
			return fmt.Errorf("sim: runcmd[%d]: %T", i, cmd)
		}
		if _, err := c.Exec(name, argv...); err != nil {
			return fmt.Errorf("sim: runcmd[%d]: %w", i, err)
		}
	}
	return nil
}
