package dockerd

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// APIVersion is the Engine API version served (Docker 20.10, Debian 12's).
const APIVersion = "1.41"

// imageDefaults are the images present on a simulated host and the command
// each runs when the container names none. The image is the host itself.
var imageDefaults = map[string][]string{
	"nginx": {"nginx", "-g", "daemon off;"},
}

// defaultPath is the PATH of a container that sets none, as in the images.
const defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Server is the engine: its containers by id, and how to start them.
type Server struct {
	self string // this program, re-executed as the container's init

	mu         sync.Mutex
	containers map[string]*container
}

// NewServer returns an engine that starts containers by re-executing self.
func NewServer(self string) *Server {
	return &Server{self: self, containers: map[string]*container{}}
}

// versionPrefix is the /v1.NN the CLI puts before every path once it has
// negotiated a version.
var versionPrefix = regexp.MustCompile(`^/v[0-9]+\.[0-9]+/`)

// ServeHTTP routes the endpoints the docker CLI calls for run, create,
// start, inspect, logs, wait, kill, rm and version.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	if loc := versionPrefix.FindStringIndex(path); loc != nil {
		path = path[loc[1]-1:]
	}
	parts := strings.Split(strings.Trim(path, "/"), "/")
	switch {
	case path == "/_ping":
		w.Header().Set("API-Version", APIVersion)
		w.Header().Set("OSType", "linux")
		w.Header().Set("Docker-Experimental", "false")
		w.Header().Set("Cache-Control", "no-cache, no-store, must-revalidate")
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if r.Method != http.MethodHead {
			w.Write([]byte("OK"))
		}
	case path == "/version" && r.Method == http.MethodGet:
		s.version(w)
	case path == "/images/create" && r.Method == http.MethodPost:
		ref := r.URL.Query().Get("fromImage")
		if tag := r.URL.Query().Get("tag"); tag != "" {
			ref += ":" + tag
		}
		if imageCmd(ref) != nil {
			writeJSON(w, http.StatusOK, map[string]string{"status": "Image is up to date for " + ref})
			return
		}
		writeError(w, http.StatusNotFound, fmt.Sprintf("pull access denied for %s: the simulation has no registry (images here: %s)", ref, strings.Join(images(), ", ")))
	case path == "/containers/json" && r.Method == http.MethodGet:
		s.list(w, truthy(r.URL.Query().Get("all")))
	case path == "/containers/create" && r.Method == http.MethodPost:
		s.create(w, r)
	case len(parts) == 3 && parts[0] == "containers":
		c := s.lookup(parts[1])
		if c == nil {
			writeError(w, http.StatusNotFound, "No such container: "+parts[1])
			return
		}
		s.containerAction(w, r, c, parts[2])
	case len(parts) == 2 && parts[0] == "containers" && r.Method == http.MethodDelete:
		c := s.lookup(parts[1])
		if c == nil {
			writeError(w, http.StatusNotFound, "No such container: "+parts[1])
			return
		}
		c.mu.Lock()
		running := c.running
		c.mu.Unlock()
		if running && !truthy(r.URL.Query().Get("force")) {
			writeError(w, http.StatusConflict, "You cannot remove a running container "+c.id+". Stop the container before attempting removal or force remove")
			return
		}
		c.remove()
		s.mu.Lock()
		delete(s.containers, c.id)
		s.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	default:
		writeError(w, http.StatusNotFound, fmt.Sprintf("sim-dockerd does not emulate %s %s", r.Method, r.URL.Path))
	}
}

func (s *Server) containerAction(w http.ResponseWriter, r *http.Request, c *container, action string) {
	switch {
	case action == "json" && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, c.inspect())
	case action == "start" && r.Method == http.MethodPost:
		c.mu.Lock()
		running := c.running
		c.mu.Unlock()
		if running {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		if err := c.start(s.self); err != nil {
			writeError(w, http.StatusInternalServerError, err.Error())
			return
		}
		w.WriteHeader(http.StatusNoContent)
	case action == "kill" && r.Method == http.MethodPost:
		sig, err := parseSignal(r.URL.Query().Get("signal"))
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		if err := c.signal(sig); err != nil {
			writeError(w, http.StatusConflict, err.Error())
			return
		}
		w.WriteHeader(http.StatusNoContent)
	case action == "stop" && r.Method == http.MethodPost:
		if err := c.signal(syscall.SIGTERM); err == nil {
			c.mu.Lock()
			exited := c.exited
			c.mu.Unlock()
			select {
			case <-exited:
			case <-time.After(10 * time.Second):
				c.signal(syscall.SIGKILL)
				<-exited
			}
		}
		w.WriteHeader(http.StatusNoContent)
	case action == "wait" && r.Method == http.MethodPost:
		c.mu.Lock()
		exited := c.exited
		running := c.running
		c.mu.Unlock()
		if r.URL.Query().Get("condition") == "next-exit" && !running {
			exited = nil // wait for the run after the next start: not emulated, answer now
		}
		// The engine sends the headers at once and the status on exit.
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
		if exited != nil {
			select {
			case <-exited:
			case <-r.Context().Done():
				return
			}
		}
		c.mu.Lock()
		code := c.exitCode
		c.mu.Unlock()
		json.NewEncoder(w).Encode(map[string]any{"StatusCode": code, "Error": nil})
	case action == "logs" && r.Method == http.MethodGet:
		q := r.URL.Query()
		w.Header().Set("Content-Type", "application/vnd.docker.multiplexed-stream")
		w.WriteHeader(http.StatusOK)
		c.log.writeTo(w, truthy(q.Get("stdout")), truthy(q.Get("stderr")))
	default:
		writeError(w, http.StatusNotFound, fmt.Sprintf("sim-dockerd does not emulate %s %s", r.Method, r.URL.Path))
	}
}

// createRequest is the part of the create body that is emulated.
type createRequest struct {
	Image      string
	Cmd        []string
	Entrypoint []string
	Env        []string
	Labels     map[string]string
	Tty        bool
	HostConfig struct {
		Binds         []string
		NetworkMode   string
		PortBindings  map[string][]struct{ HostIP, HostPort string }
		RestartPolicy struct{ Name string }
		Mounts        []json.RawMessage
	}
}

var containerName = regexp.MustCompile(`^/?[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

func (s *Server) create(w http.ResponseWriter, r *http.Request) {
	var req createRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "create: "+err.Error())
		return
	}
	name := strings.TrimPrefix(r.URL.Query().Get("name"), "/")
	if name != "" && !containerName.MatchString(name) {
		writeError(w, http.StatusBadRequest, "Invalid container name ("+name+"), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
		return
	}
	defaults := imageCmd(req.Image)
	if defaults == nil {
		writeError(w, http.StatusNotFound, "No such image: "+req.Image)
		return
	}
	if req.Tty {
		writeError(w, http.StatusBadRequest, "sim-dockerd does not emulate a TTY")
		return
	}
	if len(req.HostConfig.Mounts) > 0 {
		writeError(w, http.StatusBadRequest, "sim-dockerd emulates -v binds, not --mount")
		return
	}
	for _, b := range req.HostConfig.Binds {
		if _, _, _, err := ParseBind(b); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
	}
	ports := map[string]string{}
	for cport, bindings := range req.HostConfig.PortBindings {
		num, _, _ := strings.Cut(cport, "/")
		for _, b := range bindings {
			if b.HostPort != "" && b.HostPort != num {
				writeError(w, http.StatusBadRequest, fmt.Sprintf("sim-dockerd shares the host's network: publish %s as %s:%s, not %s", cport, num, num, b.HostPort))
				return
			}
		}
		ports[cport] = num
	}
	argv := append(append([]string{}, req.Entrypoint...), req.Cmd...)
	if len(req.Entrypoint) == 0 && len(req.Cmd) == 0 {
		argv = defaults
	}
	spec := Spec{Name: name, Image: req.Image, Cmd: argv, Env: append([]string{defaultPath}, req.Env...),
		Labels: req.Labels, Binds: req.HostConfig.Binds, Ports: ports,
		Restart: req.HostConfig.RestartPolicy.Name, Network: req.HostConfig.NetworkMode}

	s.mu.Lock()
	defer s.mu.Unlock()
	if name != "" {
		for _, c := range s.containers {
			if c.spec.Name == name {
				writeError(w, http.StatusConflict, fmt.Sprintf("Conflict. The container name \"/%s\" is already in use by container \"%s\". You have to remove (or rename) that container to be able to reuse that name.", name, c.id))
				return
			}
		}
	}
	c := newContainer(spec)
	if name == "" {
		c.spec.Name = "sim_" + c.id[:8]
	}
	s.containers[c.id] = c
	writeJSON(w, http.StatusCreated, map[string]any{"Id": c.id, "Warnings": []string{}})
}

// list answers docker ps: running containers, or all of them.
func (s *Server) list(w http.ResponseWriter, all bool) {
	s.mu.Lock()
	cs := make([]*container, 0, len(s.containers))
	for _, c := range s.containers {
		cs = append(cs, c)
	}
	s.mu.Unlock()
	sort.Slice(cs, func(i, j int) bool { return cs[i].created.After(cs[j].created) })
	out := []map[string]any{}
	for _, c := range cs {
		c.mu.Lock()
		running, code, started, finished := c.running, c.exitCode, c.started, c.finished
		c.mu.Unlock()
		if !running && !all {
			continue
		}
		state, status := "created", "Created"
		switch {
		case running:
			state, status = "running", "Up since "+started.UTC().Format(time.RFC3339)
		case !finished.IsZero():
			state, status = "exited", fmt.Sprintf("Exited (%d)", code)
		}
		labels := c.spec.Labels
		if labels == nil {
			labels = map[string]string{}
		}
		out = append(out, map[string]any{
			"Id": c.id, "Names": []string{"/" + c.spec.Name}, "Image": c.spec.Image,
			"Command": strings.Join(c.spec.Cmd, " "), "Created": c.created.Unix(),
			"State": state, "Status": status, "Ports": []any{}, "Labels": labels,
		})
	}
	writeJSON(w, http.StatusOK, out)
}

// lookup finds a container by name, full id or unique id prefix.
func (s *Server) lookup(ref string) *container {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.containers[ref]; ok {
		return c
	}
	var found *container
	for _, c := range s.containers {
		if c.spec.Name == ref {
			return c
		}
		if len(ref) >= 3 && strings.HasPrefix(c.id, ref) {
			if found != nil {
				return nil
			}
			found = c
		}
	}
	return found
}

// inspect is the container's description in the engine's shape (the
// fields the CLI's templates and fleet read).
func (c *container) inspect() map[string]any {
	c.mu.Lock()
	defer c.mu.Unlock()
	status := "created"
	switch {
	case c.running:
		status = "running"
	case !c.finished.IsZero():
		status = "exited"
	}
	ports := map[string]any{}
	bindings := map[string]any{}
	for cport, hport := range c.spec.Ports {
		b := []map[string]string{{"HostIp": "0.0.0.0", "HostPort": hport}}
		bindings[cport] = b
		if c.running {
			ports[cport] = b
		}
	}
	var mounts []map[string]any
	for _, b := range c.spec.Binds {
		src, dst, ro, _ := ParseBind(b)
		mounts = append(mounts, map[string]any{"Type": "bind", "Source": src, "Destination": dst, "RW": !ro})
	}
	labels := c.spec.Labels
	if labels == nil {
		labels = map[string]string{}
	}
	return map[string]any{
		"Id":           c.id,
		"Name":         "/" + c.spec.Name,
		"Created":      c.created.UTC().Format(time.RFC3339Nano),
		"Path":         c.spec.Cmd[0],
		"Args":         c.spec.Cmd[1:],
		"Image":        "sha256:" + c.id, // no image store: stands in for the image id
		"RestartCount": c.restarts,
		"State": map[string]any{
			"Status": status, "Running": c.running, "Paused": false, "Restarting": false,
			"OOMKilled": false, "Dead": false, "Pid": c.pid, "ExitCode": c.exitCode, "Error": c.lastErrMsg,
			"StartedAt": timeString(c.started), "FinishedAt": timeString(c.finished),
		},
		"Config": map[string]any{
			"Image": c.spec.Image, "Cmd": c.spec.Cmd, "Entrypoint": nil, "Env": c.spec.Env,
			"Labels": labels, "Tty": false, "OpenStdin": false, "AttachStdout": false, "AttachStderr": false,
		},
		"HostConfig": map[string]any{
			"Binds": c.spec.Binds, "NetworkMode": c.spec.Network, "PortBindings": bindings,
			"RestartPolicy": map[string]any{"Name": c.spec.Restart, "MaximumRetryCount": 0},
		},
		"Mounts":          mounts,
		"NetworkSettings": map[string]any{"Ports": ports},
	}
}

func (s *Server) version(w http.ResponseWriter) {
	writeJSON(w, http.StatusOK, map[string]any{
		"Platform":      map[string]string{"Name": "sim-dockerd (fleet test bed)"},
		"Version":       "20.10.24-sim",
		"ApiVersion":    APIVersion,
		"MinAPIVersion": "1.24",
		"GitCommit":     "sim",
		"GoVersion":     runtime.Version(),
		"Os":            "linux",
		"Arch":          runtime.GOARCH,
		"Components":    []map[string]any{{"Name": "Engine", "Version": "20.10.24-sim", "Details": map[string]string{"ApiVersion": APIVersion}}},
	})
}

// imageCmd returns the default command of an image present here, or nil.
// Only the repository counts: "nginx", "nginx:1.27" and
// "docker.io/library/nginx:stable" are all the host's nginx.
func imageCmd(ref string) []string {
	repo := ref
	if i := strings.IndexByte(repo, '@'); i >= 0 {
		repo = repo[:i]
	}
	if i := strings.LastIndexByte(repo, ':'); i > strings.LastIndexByte(repo, '/') {
		repo = repo[:i]
	}
	repo = repo[strings.LastIndexByte(repo, '/')+1:]
	return imageDefaults[repo]
}

func images() []string {
	var names []string
	for n := range imageDefaults {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func parseSignal(s string) (syscall.Signal, error) {
	if s == "" {
		return syscall.SIGKILL, nil
	}
	if n, err := strconv.Atoi(s); err == nil {
		return syscall.Signal(n), nil
	}
	switch strings.TrimPrefix(strings.ToUpper(s), "SIG") {
	case "HUP":
		return syscall.SIGHUP, nil
	case "INT":
		return syscall.SIGINT, nil
	case "QUIT":
		return syscall.SIGQUIT, nil
	case "KILL":
		return syscall.SIGKILL, nil
	case "USR1":
		return syscall.SIGUSR1, nil
	case "USR2":
		return syscall.SIGUSR2, nil
	case "TERM":
		return syscall.SIGTERM, nil
	}
	return 0, fmt.Errorf("invalid signal: %s", s)
}

func truthy(v string) bool { return v == "1" || v == "true" || v == "True" }

func timeString(t time.Time) string {
	if t.IsZero() {
		return "0001-01-01T00:00:00Z"
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"message": msg})
}
