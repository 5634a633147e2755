package inventory

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Error is one problem in the inventory, located in its file.
type Error struct {
	File         string
	Line, Column int
	Field        string // e.g. masters[1].address
	Msg          string
}

func (e *Error) Error() string {
	loc := e.File
	if e.Line > 0 {
		loc += fmt.Sprintf(":%d:%d", e.Line, e.Column)
	}
	if e.Field == "" {
		return loc + ": " + e.Msg
	}
	return loc + ": " + e.Field + ": " + e.Msg
}

// Errors is every problem found, in file order.
type Errors []*Error

func (es Errors) Error() string {
	msgs := make([]string, len(es))
	for i, e := range es {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "\n")
}

// Load reads, decodes and validates the inventory at path. Relative paths in
// it are taken from the inventory's folder, ~ from $HOME.
func Load(path string) (*Inventory, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("inventory: %w", err)
	}
	return Parse(path, data)
}

// Parse is Load for data already read; path is only used in messages and to
// resolve relative paths.
func Parse(path string, data []byte) (*Inventory, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, Errors{yamlError(path, err)}
	}
	if len(doc.Content) == 0 {
		return nil, Errors{{File: path, Msg: "the inventory is empty"}}
	}
	root := doc.Content[0]
	d := &decoder{file: path, pos: map[string]*yaml.Node{}}
	d.walk(root, reflect.TypeOf(Inventory{}), "")
	if len(d.errs) > 0 {
		return nil, d.sorted()
	}
	inv := &Inventory{Path: path}
	if err := root.Decode(inv); err != nil {
		return nil, Errors{yamlError(path, err)}
	}
	d.validate(inv)
	if len(d.errs) > 0 {
		return nil, d.sorted()
	}
	if err := resolvePaths(inv); err != nil {
		return nil, err
	}
	return inv, nil
}

var yamlLine = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// yamlError turns yaml.v3's "line N: msg" errors into located ones.
func yamlError(path string, err error) *Error {
	var te *yaml.TypeError
	msgs := []string{strings.TrimPrefix(err.Error(), "yaml: ")}
	if errors.As(err, &te) {
		msgs = te.Errors
	}
	e := &Error{File: path}
	var parts []string
	for _, m := range msgs {
		if sm := yamlLine.FindStringSubmatch(m); sm != nil {
			if e.Line == 0 {
				fmt.Sscan(sm[1], &e.Line)
				e.Column = 1
			}
			parts = append(parts, sm[2])
		} else {
			parts = append(parts, m)
		}
	}
	e.Msg = strings.Join(parts, "; ")
	return e
}

// decoder remembers where each field was written, so that validation can
// point at it, and collects errors.
type decoder struct {
	file  string
	pos   map[string]*yaml.Node // field path -> value node
	errs  Errors
	hasCA bool // the inventory names a CA host (the cfssl join mode needs it)
}

func (d *decoder) errorf(field string, format string, args ...any) {
	e := &Error{File: d.file, Field: field, Msg: fmt.Sprintf(format, args...)}
	if n := d.pos[field]; n != nil {
		e.Line, e.Column = n.Line, n.Column
	} else if parent := d.parentOf(field); parent != nil {
		e.Line, e.Column = parent.Line, parent.Column
	}
	d.errs = append(d.errs, e)
}

// parentOf finds the closest written ancestor of a missing field, so that
// "name is required" points at the host that lacks it.
func (d *decoder) parentOf(field string) *yaml.Node {
	for f := field; f != ""; {
		i := strings.LastIndexAny(f, ".[")
		if i < 0 {
			break
		}
		f = f[:i]
		if n := d.pos[f]; n != nil {
			return n
		}
	}
	return nil
}

func (d *decoder) sorted() Errors {
	sort.SliceStable(d.errs, func(i, j int) bool {
		if d.errs[i].Line != d.errs[j].Line {
			return d.errs[i].Line < d.errs[j].Line
		}
		return d.errs[i].Column < d.errs[j].Column
	})
	return d.errs
}

// walk records positions and reports keys the type does not have. yaml.v3's
// KnownFields gives only a line; this gives line, column and the known keys.
func (d *decoder) walk(n *yaml.Node, t reflect.Type, path string) {
	if path != "" {
		d.pos[path] = n
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == reflect.TypeOf(Duration(0)):
		return
	case t == reflect.TypeOf(LoadBalancers(nil)) && n.Kind == yaml.MappingNode:
		d.walk(n, reflect.TypeOf(Host{}), path) // one host, not a list
	case t.Kind() == reflect.Struct:
		if n.Kind != yaml.MappingNode {
			if n.Tag != "!!null" {
				d.errorf(path, "want a mapping, got %s", describe(n))
			}
			return
		}
		fields := map[string]reflect.Type{}
		var known []string
		for i := 0; i < t.NumField(); i++ {
			tag := strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0]
			if tag != "" && tag != "-" {
				fields[tag] = t.Field(i).Type
				known = append(known, tag)
			}
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			sub := join(path, k.Value)
			ft, ok := fields[k.Value]
			if !ok {
				d.pos[sub] = k
				d.errorf(sub, "unknown field %q (known: %s)", k.Value, strings.Join(known, ", "))
				continue
			}
			d.walk(v, ft, sub)
		}
	case t.Kind() == reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			if n.Tag != "!!null" {
				d.errorf(path, "want a list, got %s", describe(n))
			}
			return
		}
		for i, item := range n.Content {
			d.walk(item, t.Elem(), fmt.Sprintf("%s[%d]", path, i))
		}
	case t.Kind() == reflect.Map:
		if n.Kind != yaml.MappingNode {
			if n.Tag != "!!null" {
				d.errorf(path, "want a mapping, got %s", describe(n))
			}
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			d.pos[path+"."+n.Content[i].Value] = n.Content[i]
		}
	}
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	}
	return fmt.Sprintf("%q", n.Value)
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// UnmarshalYAML reads durations written as Go durations ("10s", "1m30s").
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration (e.g. 10s, 1m30s)", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes durations back as "10s".
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }
