package staticpod

import (
	"os"
	"strconv"
	"strings"
	"syscall"
)

func killPid(p string) error {
	n, err := strconv.Atoi(p)
	if err != nil {
		return err
	}
	return syscall.Kill(n, syscall.SIGKILL)
}

func zombie(p string) bool {
	b, err := os.ReadFile("/proc/" + p + "/stat")
	if err != nil {
		return true
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	return len(f) == 0 || f[0] == "Z"
}
