package deploy

import (
	"bufio"
	"compress/gzip"
	"context"
	"debug/elf"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/eventrt/eventrt/internal/config"
)

// instruction is one Dockerfile instruction with its continuation lines joined.
type instruction struct {
	cmd  string // upper case: FROM, RUN, ...
	args string
}

func parseDockerfile(t *testing.T, name string) []instruction {
	t.Helper()
	f, err := os.Open(filepath.Join(root, name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []instruction
	var cur strings.Builder
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "#") || line == "" && cur.Len() == 0 {
			continue
		}
		if strings.HasSuffix(line, `\`) {
			cur.WriteString(strings.TrimSuffix(line, `\`) + " ")
			continue
		}
		cur.WriteString(line)
		if s := strings.TrimSpace(cur.String()); s != "" {
			cmd, args, _ := strings.Cut(s, " ")
			out = append(out, instruction{strings.ToUpper(cmd), strings.TrimSpace(args)})
		}
		cur.Reset()
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func all(ins []instruction, cmd string) []string {
	var out []string
	for _, i := range ins {
		if i.cmd == cmd {
			out = append(out, i.args)
		}
	}
	return out
}

var goBuild = regexp.MustCompile(`go build .*`)

// buildCommand is the `go build ...` of a Dockerfile, and the environment set before it.
func buildCommand(t *testing.T, ins []instruction) (env, cmd string) {
	t.Helper()
	for _, r := range all(ins, "RUN") {
		if loc := goBuild.FindStringIndex(r); loc != nil {
			pre := strings.Fields(r[:loc[0]])
			var envs []string
			for _, f := range pre {
				if strings.Contains(f, "=") && !strings.HasPrefix(f, "--") {
					envs = append(envs, f)
				}
			}
			return strings.Join(envs, " "), strings.Join(strings.Fields(r[loc[0]:]), " ")
		}
	}
	t.Fatal("no RUN go build")
	return "", ""
}

func TestDockerfiles(t *testing.T) {
	goMod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	goVersion := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(goMod)
	if goVersion == nil {
		t.Fatal("go.mod has no go line")
	}
	known := map[string]bool{}
	for _, n := range config.EnvNames() {
		known[n] = true
	}
	ignored := dockerignore(t)
	var builds []string
	for _, tc := range []struct{ file, final string }{
		{"Dockerfile", "gcr.io/distroless/static-debian12:nonroot"},
		{"Dockerfile.python", "gcr.io/distroless/python3-debian12:nonroot"},
	} {
		ins := parseDockerfile(t, tc.file)
		froms := all(ins, "FROM")
		if len(froms) != 2 {
			t.Fatalf("%s: want a build stage and a final stage, got FROM %v", tc.file, froms)
		}
		if !strings.Contains(froms[0], "golang:${GO_VERSION}") || !strings.Contains(strings.Join(all(ins, "ARG"), "\n"), "GO_VERSION="+string(goVersion[1])) {
			t.Errorf("%s: builder is not golang:%s (go.mod's version): FROM %s", tc.file, goVersion[1], froms[0])
		}
		if froms[1] != tc.final {
			t.Errorf("%s: final stage FROM %s, want %s", tc.file, froms[1], tc.final)
		}
		users := all(ins, "USER")
		if len(users) != 1 || strings.HasPrefix(users[0], "0") || strings.HasPrefix(users[0], "root") {
			t.Errorf("%s: USER %v, want one non-root user", tc.file, users)
		}
		var entry, health []string
		if e := all(ins, "ENTRYPOINT"); len(e) != 1 || json.Unmarshal([]byte(e[0]), &entry) != nil || len(entry) != 1 {
			t.Errorf("%s: ENTRYPOINT %v must be the exec form of the binary alone", tc.file, e)
		}
		// The image has no shell: the health check must be the exec form.
		h := all(ins, "HEALTHCHECK")
		if len(h) != 1 {
			t.Fatalf("%s: want one HEALTHCHECK, got %v", tc.file, h)
		}
		_, cmdJSON, _ := strings.Cut(h[0], "CMD ")
		if err := json.Unmarshal([]byte(cmdJSON), &health); err != nil || len(entry) == 0 || !equalStrings(health, []string{entry[0], "healthcheck"}) {
			t.Errorf("%s: HEALTHCHECK %q, want CMD [%q, \"healthcheck\"]", tc.file, h[0], entry)
		}
		env, cmd := buildCommand(t, ins)
		for _, want := range []string{"CGO_ENABLED=0"} {
			if !strings.Contains(env, want) {
				t.Errorf("%s: go build without %s", tc.file, want)
			}
		}
		for _, want := range []string{"-trimpath", "-X github.com/eventrt/eventrt/internal/buildinfo.Version=${VERSION}",
			"-X github.com/eventrt/eventrt/internal/buildinfo.Revision=${REVISION}", "./cmd/eventrt"} {
			if !strings.Contains(cmd, want) {
				t.Errorf("%s: go build without %s: %s", tc.file, want, cmd)
			}
		}
		builds = append(builds, env+" "+cmd)
		for _, c := range all(ins, "COPY") {
			fields := strings.Fields(c)
			if strings.HasPrefix(fields[0], "--from") {
				continue
			}
			for _, src := range fields[:len(fields)-1] {
				if _, err := os.Stat(filepath.Join(root, src)); err != nil && src != "." {
					t.Errorf("%s: COPY %s: %v", tc.file, src, err)
				}
				if ignored(src) {
					t.Errorf("%s: COPY %s, which .dockerignore leaves out of the context", tc.file, src)
				}
			}
		}
		for _, e := range all(ins, "ENV") {
			for _, kv := range strings.Fields(e) {
				name, _, _ := strings.Cut(kv, "=")
				if !known[name] {
					t.Errorf("%s: ENV %s is not a setting eventrt reads", tc.file, name)
				}
			}
		}
	}
	if len(builds) == 2 && builds[0] != builds[1] {
		t.Errorf("the two images build different binaries:\n%s\n%s", builds[0], builds[1])
	}
	for _, need := range []string{"go.mod", "go.sum", "cmd/eventrt/main.go", "internal/config/config.go"} {
		if ignored(need) {
			t.Errorf(".dockerignore leaves out %s, which the build needs", need)
		}
	}
}

func equalStrings(a, b []string) bool {
	return strings.Join(a, "\x00") == strings.Join(b, "\x00")
}

// dockerignore returns a matcher of the paths .dockerignore leaves out of the build context:
// a pattern matches a path or any of its parent directories.
func dockerignore(t *testing.T) func(string) bool {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	var patterns []string
	for _, l := range strings.Split(string(data), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			if strings.HasPrefix(l, "!") {
				t.Fatalf(".dockerignore: exceptions (%s) are beyond this check; keep the file a plain list", l)
			}
			patterns = append(patterns, strings.TrimSuffix(l, "/"))
		}
	}
	return func(path string) bool {
		parts := strings.Split(filepath.ToSlash(filepath.Clean(path)), "/")
		for i := range parts {
			prefix := strings.Join(parts[:i+1], "/")
			for _, p := range patterns {
				if ok, _ := filepath.Match(p, prefix); ok {
					return true
				}
			}
		}
		return false
	}
}

// TestImageBinary builds the binary exactly as the Dockerfile does and checks it is static,
// stamped, small enough for an image under 20 MB as pulled, and that the image's HEALTHCHECK
// command works without a shell.
func TestImageBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the eventrt binary")
	}
	env, cmd := buildCommand(t, parseDockerfile(t, "Dockerfile"))
	const version, revision = "v0.0.0-imagetest", "abc1234"
	bin := filepath.Join(t.TempDir(), "eventrt")
	args := shellFields(t, cmd)
	for i := range args {
		args[i] = strings.NewReplacer("${VERSION}", version, "${REVISION}", revision).Replace(args[i])
		if args[i] == "-o" && i+1 < len(args) {
			args[i+1] = bin
		}
	}
	build := exec.Command(args[0], args[1:]...)
	build.Dir = root
	build.Env = append(os.Environ(), "GOOS="+runtime.GOOS, "GOARCH="+runtime.GOARCH)
	for _, kv := range strings.Fields(env) {
		if !strings.Contains(kv, "$") { // GOOS=$TARGETOS: the host's, set above
			build.Env = append(build.Env, kv)
		}
	}
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}

	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the binary asks for a dynamic loader: not static")
		}
	}
	if libs, err := f.ImportedLibraries(); err != nil || len(libs) > 0 {
		t.Errorf("the binary links %v (%v): not static", libs, err)
	}
	f.Close()

	size, packed := fileSizes(t, bin)
	t.Logf("binary: %.1f MiB, %.1f MiB gzipped", float64(size)/(1<<20), float64(packed)/(1<<20))
	// The image as pulled (gzipped layers) must stay under 20 MB: distroless/static adds
	// under 1 MB. On disk it is bigger: expr looks methods up by name through reflection,
	// which stops the linker from dropping any exported method, and rueidis' generated
	// command builders then weigh about 11 MB (deploy/README.md, "Image size").
	if packed > 18<<20 {
		t.Errorf("binary is %d bytes gzipped: the image would pass 20 MB", packed)
	}
	// A guard against accidental growth (a Kubernetes client, say) on disk.
	if size > 32<<20 {
		t.Errorf("binary is %d bytes: it grew by more than any feature explains", size)
	}

	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), version) || !strings.Contains(string(out), revision) {
		t.Errorf("eventrt version = %q (%v), want %s and %s stamped", out, err, version, revision)
	}

	// The HEALTHCHECK: exit 0 when /healthz answers 200 on HTTP_ADDR's port, 1 when nothing
	// listens there.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
		}
	})}
	go srv.Serve(ln)
	defer srv.Close()
	healthcheck := func(addr string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c := exec.CommandContext(ctx, bin, "healthcheck")
		c.Env = append(os.Environ(), "HTTP_ADDR="+addr)
		return c.Run()
	}
	if err := healthcheck(ln.Addr().String()); err != nil {
		t.Errorf("healthcheck against a healthy /healthz: %v", err)
	}
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closed.Addr().String()
	closed.Close()
	var exit *exec.ExitError
	if err := healthcheck(closedAddr); !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Errorf("healthcheck with nothing listening: %v, want exit status 1", err)
	}
}

// fileSizes returns the size of a file and of its gzip compression (how a layer is pulled).
func fileSizes(t *testing.T, path string) (size, packed int64) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var n countingWriter
	zw := gzip.NewWriter(&n)
	if _, err := zw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return int64(len(data)), int64(n)
}

type countingWriter int64

func (c *countingWriter) Write(p []byte) (int, error) {
	*c += countingWriter(len(p))
	return len(p), nil
}

// shellFields splits a command line as sh would for the simple quoting a Dockerfile uses.
func shellFields(t *testing.T, s string) []string {
	t.Helper()
	var out []string
	var cur strings.Builder
	inWord, quote := false, byte(0)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0 && c == quote:
			quote = 0
		case quote != 0:
			cur.WriteByte(c)
		case c == '"' || c == '\'':
			quote, inWord = c, true
		case c == ' ':
			if inWord {
				out = append(out, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if quote != 0 {
		t.Fatalf("unterminated quote in %q", s)
	}
	if inWord {
		out = append(out, cur.String())
	}
	return out
}
