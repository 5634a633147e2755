package exec

import "strings"

// Quote returns s as one POSIX shell word. Single quotes keep every byte
// literal (newlines, $, `, \, unicode); an embedded single quote is closed,
// escaped and reopened. Words made only of safe characters stay bare so that
// commands in errors and plans remain readable.
func Quote(s string) string {
	if s == "" {
		return "''"
	}
	if isShellSafe(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Command joins argv into one command line, quoting every word. It is the
// only way fleet builds a remote command from values it did not write itself.
func Command(argv ...string) string {
	var b strings.Builder
	for i, a := range argv {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(Quote(a))
	}
	return b.String()
}

func isShellSafe(s string) bool {
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case strings.ContainsRune("-_./:=@,+%", r):
		default:
			return false
		}
	}
	return true
}
