package deploy

import (
	"bytes"
	"io"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"sigs.k8s.io/yaml"

	"github.com/eventrt/eventrt/internal/config"
)

// TestEnvNamesAreAccepted: every variable a manifest gives eventrt, directly or through a
// ConfigMap in envFrom, is one eventrt reads, and the whole environment passes eventrt's own
// configuration parser.
func TestEnvNamesAreAccepted(t *testing.T) {
	known := map[string]bool{}
	for _, n := range config.EnvNames() {
		known[n] = true
	}
	for _, m := range eventrtBuilds(t) {
		dir := m.dir
		env := eventrtEnv(t, m)
		for name := range env {
			if !known[name] {
				t.Errorf("%s: eventrt does not read %s (not in config.EnvNames())", dir, name)
			}
		}
		if _, err := config.Parse(nil, func(k string) string { return env[k] }, io.Discard); err != nil {
			t.Errorf("%s: eventrt refuses the environment: %v", dir, err)
		}
	}
}

func TestEnvOfResolvesLikeTheKubelet(t *testing.T) {
	m := build(t, "overlays/course")
	env := eventrtEnv(t, m)
	// env wins over envFrom: the course's outputkey ConfigMap, not the base config.
	if got, want := env["REDIS_OUTPUT_KEY"], m.configMaps["outputkey"].Data["REDIS_OUTPUT_KEY"]; got != want || got == "" {
		t.Errorf("REDIS_OUTPUT_KEY = %q, want %q from ConfigMap outputkey", got, want)
	}
	if _, ok := env["LOG_FORMAT"]; !ok {
		t.Errorf("LOG_FORMAT from the base ConfigMap (envFrom) is missing: %v", env)
	}
}

// eventrtBuilds are the builds that run eventrt (all but redis/).
func eventrtBuilds(t *testing.T) []*manifests {
	t.Helper()
	var out []*manifests
	for _, dir := range kustomizations {
		if m := build(t, dir); m.deployments["eventrt"] != nil {
			out = append(out, m)
		}
	}
	if len(out) < 5 {
		t.Fatalf("only %d builds run eventrt", len(out))
	}
	return out
}

// eventrtEnv is the environment of the eventrt container of a build.
func eventrtEnv(t *testing.T, m *manifests) map[string]string {
	t.Helper()
	_, c := eventrtDeployment(t, m)
	env, err := envOf(m, c)
	if err != nil {
		t.Fatalf("%s: %v", m.dir, err)
	}
	return env
}

// options parses the eventrt container's environment of a build.
func options(t *testing.T, m *manifests) config.Options {
	t.Helper()
	env := eventrtEnv(t, m)
	o, err := config.Parse(nil, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatalf("%s: %v", m.dir, err)
	}
	return o
}

func TestShutdownFitsTheGracePeriod(t *testing.T) {
	for _, m := range eventrtBuilds(t) {
		dir, d := m.dir, m.deployments["eventrt"]
		o := options(t, m)
		grace := d.Spec.Template.Spec.TerminationGracePeriodSeconds
		if grace == nil {
			t.Errorf("%s: no terminationGracePeriodSeconds (default 30s) stated", dir)
			continue
		}
		// Leave the kubelet room after eventrt's own bound: it kills at the grace period.
		if limit := time.Duration(*grace) * time.Second; o.ShutdownTimeout+5*time.Second > limit {
			t.Errorf("%s: SHUTDOWN_TIMEOUT %v + 5s exceeds terminationGracePeriodSeconds %v", dir, o.ShutdownTimeout, limit)
		}
	}
}

func TestProbesAndScrapingUseTheHTTPPort(t *testing.T) {
	for _, m := range eventrtBuilds(t) {
		dir, d := m.dir, m.deployments["eventrt"]
		_, c := eventrtDeployment(t, m)
		o := options(t, m)
		_, port, err := net.SplitHostPort(o.HTTPAddr)
		if err != nil {
			t.Fatalf("%s: HTTP_ADDR %q: %v", dir, o.HTTPAddr, err)
		}
		var named string
		for _, p := range c.Ports {
			if strconv.Itoa(int(p.ContainerPort)) == port {
				named = p.Name
			}
		}
		if named == "" {
			t.Errorf("%s: no container port for HTTP_ADDR %s", dir, o.HTTPAddr)
		}
		for _, p := range []struct {
			probe *corev1.Probe
			path  string
		}{{c.LivenessProbe, "/healthz"}, {c.ReadinessProbe, "/readyz"}} {
			if p.probe == nil || p.probe.HTTPGet == nil {
				t.Errorf("%s: no HTTP probe for %s", dir, p.path)
				continue
			}
			if p.probe.HTTPGet.Path != p.path || p.probe.HTTPGet.Port.String() != named {
				t.Errorf("%s: probe %s on port %s, want %s on %s", dir, p.probe.HTTPGet.Path, p.probe.HTTPGet.Port.String(), p.path, named)
			}
		}
		ann := d.Spec.Template.Annotations
		if ann["prometheus.io/scrape"] != "true" || ann["prometheus.io/port"] != port || ann["prometheus.io/path"] != "/metrics" {
			t.Errorf("%s: prometheus.io annotations %v do not point at :%s/metrics", dir, ann, port)
		}
		podLabels := labels.Set(d.Spec.Template.Labels)
		svc, ok := m.services["eventrt"]
		if !ok {
			t.Errorf("%s: no metrics Service", dir)
			continue
		}
		if !labels.SelectorFromSet(svc.Spec.Selector).Matches(podLabels) {
			t.Errorf("%s: Service selector %v misses the pods %v", dir, svc.Spec.Selector, podLabels)
		}
		svcPorts := map[string]bool{}
		for _, p := range svc.Spec.Ports {
			svcPorts[p.Name] = true
			if p.TargetPort.String() != named && p.TargetPort.String() != port {
				t.Errorf("%s: Service port %s targets %s, not the metrics port", dir, p.Name, p.TargetPort.String())
			}
		}
		for name, sm := range m.serviceMonitors {
			sel, err := metav1.LabelSelectorAsSelector(&sm.Spec.Selector)
			if err != nil {
				t.Fatal(err)
			}
			if !sel.Matches(labels.Set(svc.Labels)) {
				t.Errorf("%s: ServiceMonitor %s does not select Service %s (labels %v)", dir, name, svc.Name, svc.Labels)
			}
			for _, e := range sm.Spec.Endpoints {
				if !svcPorts[e.Port] {
					t.Errorf("%s: ServiceMonitor %s scrapes port %q, which the Service lacks", dir, name, e.Port)
				}
			}
		}
		for name, pdb := range m.pdbs {
			sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
			if err != nil {
				t.Fatal(err)
			}
			if !sel.Matches(podLabels) {
				t.Errorf("%s: PodDisruptionBudget %s misses the pods", dir, name)
			}
			if pdb.Spec.MinAvailable != nil && pdb.Spec.MinAvailable.IntValue() >= int(*d.Spec.Replicas) {
				t.Errorf("%s: PodDisruptionBudget %s blocks every drain", dir, name)
			}
		}
	}
}

// TestPodsAreLockedDown: every container of every build runs non-root, without privilege
// escalation or capabilities, with RuntimeDefault seccomp and requests and limits; eventrt's
// root filesystem is read-only (the "restricted" Pod Security Standard and then some).
func TestPodsAreLockedDown(t *testing.T) {
	for _, dir := range kustomizations {
		m := build(t, dir)
		for name, d := range m.deployments {
			pod := d.Spec.Template.Spec
			if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
				t.Errorf("%s: %s mounts a service account token it does not need", dir, name)
			}
			for _, c := range pod.Containers {
				where := dir + ": " + name + "/" + c.Name
				sc := c.SecurityContext
				if sc == nil {
					t.Errorf("%s: no securityContext", where)
					continue
				}
				nonRoot := sc.RunAsNonRoot != nil && *sc.RunAsNonRoot ||
					pod.SecurityContext != nil && pod.SecurityContext.RunAsNonRoot != nil && *pod.SecurityContext.RunAsNonRoot
				if !nonRoot {
					t.Errorf("%s: may run as root", where)
				}
				if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
					t.Errorf("%s: allows privilege escalation", where)
				}
				if sc.Privileged != nil && *sc.Privileged {
					t.Errorf("%s: privileged", where)
				}
				if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0 {
					t.Errorf("%s: capabilities %v, want drop ALL and add none", where, sc.Capabilities)
				}
				if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
					t.Errorf("%s: writable root filesystem", where)
				}
				seccomp := sc.SeccompProfile
				if seccomp == nil && pod.SecurityContext != nil {
					seccomp = pod.SecurityContext.SeccompProfile
				}
				if seccomp == nil || seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault {
					t.Errorf("%s: no RuntimeDefault seccomp profile", where)
				}
				for _, res := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
					req, hasReq := c.Resources.Requests[res]
					lim, hasLim := c.Resources.Limits[res]
					if !hasReq || !hasLim {
						t.Errorf("%s: %s request and limit must both be set", where, res)
					} else if req.Cmp(lim) > 0 {
						t.Errorf("%s: %s request %s above limit %s", where, res, req.String(), lim.String())
					}
				}
			}
		}
	}
}

// TestHandlerIsMountedAsADirectory: in every expr build the handler ConfigMap is mounted as
// a directory at HANDLER_PATH (a subPath mount never sees updates: no hot reload), and it
// holds the file HANDLER_FUNCTION names.
func TestHandlerIsMountedAsADirectory(t *testing.T) {
	for _, dir := range []string{"base", "overlays/course", "overlays/stream", "overlays/demo"} {
		m := build(t, dir)
		d, c := eventrtDeployment(t, m)
		o := options(t, m)
		var mount *corev1.VolumeMount
		for i := range c.VolumeMounts {
			if c.VolumeMounts[i].MountPath == o.HandlerPath {
				mount = &c.VolumeMounts[i]
			}
		}
		if mount == nil {
			t.Errorf("%s: nothing mounted at HANDLER_PATH %s", dir, o.HandlerPath)
			continue
		}
		if mount.SubPath != "" || mount.SubPathExpr != "" {
			t.Errorf("%s: handler mounted with subPath: hot reload cannot work", dir)
		}
		var cmName string
		for _, v := range d.Spec.Template.Spec.Volumes {
			if v.Name == mount.Name && v.ConfigMap != nil {
				cmName = v.ConfigMap.Name
			}
		}
		cm, ok := m.configMaps[cmName]
		if !ok {
			t.Errorf("%s: the handler volume is not a ConfigMap of the build (%q)", dir, cmName)
			continue
		}
		module, _, _ := strings.Cut(o.HandlerFunction, ".")
		if _, ok := cm.Data[module+".expr"]; !ok {
			t.Errorf("%s: ConfigMap %s has no %s.expr for HANDLER_FUNCTION %s", dir, cmName, module, o.HandlerFunction)
		}
		// The hash suffix would change the name on every edit, rolling the pods instead of
		// letting eventrt reload.
		if cmName != "eventrt-handler" {
			t.Errorf("%s: handler ConfigMap named %q, want the stable eventrt-handler", dir, cmName)
		}
	}
}

// TestHandlerCopiesAreTheExamples: the handlers the manifests ship are the examples, byte
// for byte (kustomize reads no file outside its directory, hence the copies).
func TestHandlerCopiesAreTheExamples(t *testing.T) {
	for copied, example := range map[string]string{
		"base/handler/handler_module.expr":     "examples/classic/handler_module.expr",
		"overlays/course-python/usermodule.py": "examples/python/usermodule.py",
	} {
		want, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(example)))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.FromSlash(copied))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("deploy/%s differs from %s; copy it over", copied, example)
		}
	}
}

// TestCourseOverlayMirrorsTheCourseDeployment: ConfigMap outputkey for REDIS_OUTPUT_KEY,
// input key metrics, REDIS_HOST and REDIS_PORT in the env, 100m / 300Mi.
func TestCourseOverlayMirrorsTheCourseDeployment(t *testing.T) {
	for _, dir := range []string{"overlays/course", "overlays/course-python"} {
		m := build(t, dir)
		_, c := eventrtDeployment(t, m)
		byName := map[string]corev1.EnvVar{}
		for _, e := range c.Env {
			byName[e.Name] = e
		}
		out := byName["REDIS_OUTPUT_KEY"].ValueFrom
		if out == nil || out.ConfigMapKeyRef == nil || out.ConfigMapKeyRef.Name != "outputkey" || out.ConfigMapKeyRef.Key != "REDIS_OUTPUT_KEY" {
			t.Errorf("%s: REDIS_OUTPUT_KEY must come from ConfigMap outputkey, key REDIS_OUTPUT_KEY", dir)
		}
		if byName["REDIS_INPUT_KEY"].Value != "metrics" {
			t.Errorf("%s: REDIS_INPUT_KEY = %q, want metrics", dir, byName["REDIS_INPUT_KEY"].Value)
		}
		for _, n := range []string{"REDIS_HOST", "REDIS_PORT"} {
			if byName[n].Value == "" {
				t.Errorf("%s: %s not set in the env", dir, n)
			}
		}
		for _, rl := range []corev1.ResourceList{c.Resources.Requests, c.Resources.Limits} {
			if cpu := rl[corev1.ResourceCPU]; cpu.Cmp(resource.MustParse("100m")) != 0 {
				t.Errorf("%s: cpu %s, want 100m", dir, cpu.String())
			}
			if mem := rl[corev1.ResourceMemory]; mem.Cmp(resource.MustParse("300Mi")) != 0 {
				t.Errorf("%s: memory %s, want 300Mi", dir, mem.String())
			}
		}
	}
}

// TestCoursePythonChangesOnlyTheImage: the Python overlay is the course overlay with the
// Python image and the course's own handler mount (pyfile at /opt/usermodule.py), nothing
// else.
func TestCoursePythonChangesOnlyTheImage(t *testing.T) {
	expr, ec := eventrtDeployment(t, build(t, "overlays/course"))
	m := build(t, "overlays/course-python")
	py, pc := eventrtDeployment(t, m)
	if pc.Image != ec.Image+"-python" {
		t.Errorf("images %q and %q: want the same tag with -python", ec.Image, pc.Image)
	}
	var pyMount *corev1.VolumeMount
	for i := range pc.VolumeMounts {
		if pc.VolumeMounts[i].MountPath == config.DefaultPythonFile {
			pyMount = &pc.VolumeMounts[i]
		}
	}
	if pyMount == nil || pyMount.SubPath != "pyfile" {
		t.Fatalf("course-python: ConfigMap pyfile not mounted at %s with subPath pyfile: %+v", config.DefaultPythonFile, pc.VolumeMounts)
	}
	if _, ok := m.configMaps["pyfile"].Data["pyfile"]; !ok {
		t.Error("course-python: ConfigMap pyfile has no key pyfile")
	}
	// Undo the two intended differences; what is left must be identical.
	norm := py.DeepCopy()
	nc := &norm.Spec.Template.Spec.Containers[0]
	nc.Image = ec.Image
	nc.VolumeMounts = ec.VolumeMounts
	norm.Spec.Template.Spec.Volumes = expr.Spec.Template.Spec.Volumes
	if !reflect.DeepEqual(norm.Spec, expr.Spec) {
		t.Errorf("course-python differs from course beyond image and handler mount:\n%s\n---\n%s", mustYAML(t, norm.Spec), mustYAML(t, expr.Spec))
	}
}

// TestStreamScaledObject: KEDA scales the eventrt Deployment on the lag of the group eventrt
// reads, at the address and with the password eventrt uses.
func TestStreamScaledObject(t *testing.T) {
	m := build(t, "overlays/stream")
	d, c := eventrtDeployment(t, m)
	env := eventrtEnv(t, m)
	so, ok := m.scaledObjects["eventrt"]
	if !ok {
		t.Fatal("no ScaledObject eventrt")
	}
	if so.Spec.ScaleTargetRef.Name != d.Name {
		t.Errorf("ScaledObject targets %q, not Deployment %q", so.Spec.ScaleTargetRef.Name, d.Name)
	}
	if so.Spec.MinReplicaCount == nil || *so.Spec.MinReplicaCount < 1 {
		t.Error("minReplicaCount must be at least 1: entries must not wait for a scale-up from zero")
	}
	if len(so.Spec.Triggers) != 1 || so.Spec.Triggers[0].Type != "redis-streams" {
		t.Fatalf("want one redis-streams trigger, got %+v", so.Spec.Triggers)
	}
	md := so.Spec.Triggers[0].Metadata
	for k := range md {
		if !redisStreamsKeys[k] {
			t.Errorf("redis-streams metadata %q is not a KEDA parameter", k)
		}
	}
	if md["stream"] != env["REDIS_INPUT_KEY"] {
		t.Errorf("KEDA watches stream %q, eventrt reads %q", md["stream"], env["REDIS_INPUT_KEY"])
	}
	group := env["STREAM_GROUP"]
	if group == "" {
		group = "eventrt"
	}
	if md["consumerGroup"] != group {
		t.Errorf("KEDA watches group %q, eventrt reads as %q", md["consumerGroup"], group)
	}
	if _, err := strconv.Atoi(md["lagCount"]); err != nil {
		t.Errorf("lagCount %q: scale on the group's lag: %v", md["lagCount"], err)
	}
	for _, k := range []string{"hostFromEnv", "portFromEnv", "passwordFromEnv"} {
		name := md[k]
		inEnv := false
		for _, e := range c.Env {
			inEnv = inEnv || e.Name == name
		}
		if _, fromCM := env[name]; name == "" || !inEnv && !fromCM {
			t.Errorf("%s %q is not in the eventrt container's environment", k, name)
		}
	}
	if env["INPUT_MODE"] != "stream" {
		t.Errorf("INPUT_MODE = %q, want stream", env["INPUT_MODE"])
	}
}

// TestDemoRedis: the demo's Redis has keyspace notifications on in its configuration, is the
// Redis eventrt talks to, and shares eventrt's password Secret.
func TestDemoRedis(t *testing.T) {
	m := build(t, "overlays/demo")
	for kind, objs := range map[string][]string{
		"Deployment": keys(m.deployments), "Service": keys(m.services), "ConfigMap": keys(m.configMaps),
		"Secret": keys(m.secrets),
	} {
		for _, n := range objs {
			var ns string
			switch kind {
			case "Deployment":
				ns = m.deployments[n].Namespace
			case "Service":
				ns = m.services[n].Namespace
			case "ConfigMap":
				ns = m.configMaps[n].Namespace
			case "Secret":
				ns = m.secrets[n].Namespace
			}
			if ns != "eventrt-demo" {
				t.Errorf("%s %s in namespace %q, want eventrt-demo", kind, n, ns)
			}
		}
	}
	r, ok := m.deployments["redis"]
	if !ok {
		t.Fatal("no Deployment redis")
	}
	args := r.Spec.Template.Spec.Containers[0].Args
	i := slices.Index(args, "--notify-keyspace-events")
	if i < 0 || i+1 >= len(args) {
		t.Fatalf("redis args %v do not set notify-keyspace-events", args)
	}
	// K: the keyspace channel eventrt subscribes to; A: every command class (strings, hashes,
	// streams, generic), so any input key type triggers.
	if flags := args[i+1]; !strings.Contains(flags, "K") || !strings.Contains(flags, "A") {
		t.Errorf("notify-keyspace-events %q misses keyspace events for the input key", flags)
	}
	o := options(t, m)
	svc, ok := m.services[o.RedisHost]
	if !ok {
		t.Fatalf("REDIS_HOST %q is not a Service of the demo", o.RedisHost)
	}
	if svc.Spec.Ports[0].Port != int32(o.RedisPort) {
		t.Errorf("REDIS_PORT %d, Service %s listens on %d", o.RedisPort, svc.Name, svc.Spec.Ports[0].Port)
	}
	if !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(r.Spec.Template.Labels)) {
		t.Errorf("Service %s does not select the redis pods", svc.Name)
	}
	if o.RedisPassword == "" {
		t.Error("the demo runs without a password: the Secret path is not exercised")
	}
	var redisPass string
	for _, e := range r.Spec.Template.Spec.Containers[0].Env {
		if e.Name == "REDIS_PASSWORD" && e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			redisPass = e.ValueFrom.SecretKeyRef.Name + "/" + e.ValueFrom.SecretKeyRef.Key
		}
	}
	if redisPass != "eventrt-redis/REDIS_PASSWORD" || !slices.Contains(args, "$(REDIS_PASSWORD)") {
		t.Errorf("redis does not take its password from Secret eventrt-redis (%q, args %v)", redisPass, args)
	}
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func mustYAML(t *testing.T, v any) string {
	t.Helper()
	out, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}
