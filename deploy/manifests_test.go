package deploy

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// root is the repository root, seen from this package's directory (go test's working dir).
const root = ".."

// kustomizeModule builds the manifests where neither kubectl nor kustomize is installed.
// It is the kustomize that kubectl 1.32 embeds.
const kustomizeModule = "sigs.k8s.io/kustomize/kustomize/v5@v5.5.0"

// kustomizations are the directories that must build, relative to deploy/.
var kustomizations = []string{
	"base",
	"redis",
	"overlays/course",
	"overlays/course-python",
	"overlays/stream",
	"overlays/demo",
}

// Local shapes of the custom resources: enough to decode them strictly, so a misspelt field
// is an error, and to check the fields that tie them to the rest.
type crdHeader struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   metav1.ObjectMeta `json:"metadata"`
}

type serviceMonitor struct {
	crdHeader `json:",inline"`
	Spec      struct {
		Selector          metav1.LabelSelector `json:"selector"`
		NamespaceSelector *struct {
			Any        bool     `json:"any,omitempty"`
			MatchNames []string `json:"matchNames,omitempty"`
		} `json:"namespaceSelector,omitempty"`
		Endpoints []struct {
			Port          string `json:"port"`
			Path          string `json:"path,omitempty"`
			Interval      string `json:"interval,omitempty"`
			ScrapeTimeout string `json:"scrapeTimeout,omitempty"`
		} `json:"endpoints"`
	} `json:"spec"`
}

type prometheusRule struct {
	crdHeader `json:",inline"`
	Spec      RuleFile `json:"spec"`
}

type scaledObject struct {
	crdHeader `json:",inline"`
	Spec      struct {
		ScaleTargetRef struct {
			APIVersion string `json:"apiVersion,omitempty"`
			Kind       string `json:"kind,omitempty"`
			Name       string `json:"name"`
		} `json:"scaleTargetRef"`
		PollingInterval *int32 `json:"pollingInterval,omitempty"`
		CooldownPeriod  *int32 `json:"cooldownPeriod,omitempty"`
		MinReplicaCount *int32 `json:"minReplicaCount,omitempty"`
		MaxReplicaCount *int32 `json:"maxReplicaCount,omitempty"`
		Triggers        []struct {
			Type              string            `json:"type"`
			Metadata          map[string]string `json:"metadata"`
			AuthenticationRef *struct {
				Name string `json:"name"`
			} `json:"authenticationRef,omitempty"`
		} `json:"triggers"`
	} `json:"spec"`
}

// redisStreamsKeys are the metadata keys KEDA's redis-streams scaler knows.
var redisStreamsKeys = map[string]bool{
	"address": true, "host": true, "port": true, "addressFromEnv": true, "hostFromEnv": true,
	"portFromEnv": true, "usernameFromEnv": true, "passwordFromEnv": true, "stream": true,
	"consumerGroup": true, "pendingEntriesCount": true, "streamLength": true, "lagCount": true,
	"activationLagCount": true, "databaseIndex": true, "enableTLS": true, "unsafeSsl": true,
}

// manifests is one kustomize build, decoded.
type manifests struct {
	dir string
	raw []byte
	// objects holds every object as "Kind/name".
	objects         map[string]bool
	deployments     map[string]*appsv1.Deployment
	services        map[string]*corev1.Service
	configMaps      map[string]*corev1.ConfigMap
	secrets         map[string]*corev1.Secret
	serviceAccounts map[string]*corev1.ServiceAccount
	namespaces      map[string]*corev1.Namespace
	pdbs            map[string]*policyv1.PodDisruptionBudget
	serviceMonitors map[string]*serviceMonitor
	promRules       map[string]*prometheusRule
	scaledObjects   map[string]*scaledObject
}

var docSep = regexp.MustCompile(`(?m)^---[ \t]*$`)

// put makes a new object of its type, files it under name and returns it to decode into.
func put[T any](dst map[string]*T, name string) *T {
	v := new(T)
	dst[name] = v
	return v
}

// decodeStrict decodes one YAML document into the Go type of its kind; unknown kinds and
// unknown fields are errors.
func (m *manifests) decodeStrict(doc []byte) error {
	var h crdHeader
	if err := yaml.Unmarshal(doc, &h); err != nil {
		return fmt.Errorf("decode header: %w", err)
	}
	name := h.Metadata.Name
	var dst any
	switch h.APIVersion + " " + h.Kind {
	case "apps/v1 Deployment":
		dst = put(m.deployments, name)
	case "v1 Service":
		dst = put(m.services, name)
	case "v1 ConfigMap":
		dst = put(m.configMaps, name)
	case "v1 Secret":
		dst = put(m.secrets, name)
	case "v1 ServiceAccount":
		dst = put(m.serviceAccounts, name)
	case "v1 Namespace":
		dst = put(m.namespaces, name)
	case "policy/v1 PodDisruptionBudget":
		dst = put(m.pdbs, name)
	case "monitoring.coreos.com/v1 ServiceMonitor":
		dst = put(m.serviceMonitors, name)
	case "monitoring.coreos.com/v1 PrometheusRule":
		dst = put(m.promRules, name)
	case "keda.sh/v1alpha1 ScaledObject":
		dst = put(m.scaledObjects, name)
	default:
		return fmt.Errorf("%s %s %q: kind not known to this test", h.APIVersion, h.Kind, name)
	}
	if err := yaml.UnmarshalStrict(doc, dst); err != nil {
		return fmt.Errorf("%s %q: %w", h.Kind, name, err)
	}
	m.objects[h.Kind+"/"+name] = true
	return nil
}

func decodeAll(dir string, raw []byte) (*manifests, error) {
	m := &manifests{
		dir: dir, raw: raw, objects: map[string]bool{},
		deployments: map[string]*appsv1.Deployment{}, services: map[string]*corev1.Service{},
		configMaps: map[string]*corev1.ConfigMap{}, secrets: map[string]*corev1.Secret{},
		serviceAccounts: map[string]*corev1.ServiceAccount{}, namespaces: map[string]*corev1.Namespace{},
		pdbs: map[string]*policyv1.PodDisruptionBudget{}, serviceMonitors: map[string]*serviceMonitor{},
		promRules: map[string]*prometheusRule{}, scaledObjects: map[string]*scaledObject{},
	}
	for _, doc := range docSep.Split(string(raw), -1) {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		if err := m.decodeStrict([]byte(doc)); err != nil {
			return nil, fmt.Errorf("%s: %w", dir, err)
		}
	}
	return m, nil
}

// kustomizeBuild runs kustomize on deploy/dir: kubectl's embedded one where kubectl is
// installed, else a kustomize binary, else the kustomize module through `go run` (which
// needs the Go module proxy once, then its cache).
func kustomizeBuild(dir string) ([]byte, error) {
	path := filepath.Join(".", dir)
	var cmd *exec.Cmd
	if kubectl, err := exec.LookPath("kubectl"); err == nil {
		cmd = exec.Command(kubectl, "kustomize", path)
	} else if kustomize, err := exec.LookPath("kustomize"); err == nil {
		cmd = exec.Command(kustomize, "build", path)
	} else {
		cmd = exec.Command("go", "run", kustomizeModule, "build", path)
		// `go run module@version` builds outside this module; GOFLAGS such as -mod would
		// only get in its way.
		cmd.Env = append(os.Environ(), "GOFLAGS=")
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s: %w\n%s", strings.Join(cmd.Args, " "), err, stderr.Bytes())
	}
	return out, nil
}

// builds builds every kustomization once per test binary; tests share the result.
var builds = sync.OnceValues(func() (map[string]*manifests, error) {
	all := map[string]*manifests{}
	for _, dir := range kustomizations {
		raw, err := kustomizeBuild(dir)
		if err != nil {
			return nil, err
		}
		m, err := decodeAll(dir, raw)
		if err != nil {
			return nil, err
		}
		all[dir] = m
	}
	return all, nil
})

func build(t *testing.T, dir string) *manifests {
	t.Helper()
	all, err := builds()
	if err != nil {
		t.Fatalf("kustomize: %v", err)
	}
	m, ok := all[dir]
	if !ok {
		t.Fatalf("no build of %s", dir)
	}
	return m
}

// eventrtDeployment returns the eventrt Deployment of a build and its eventrt container.
func eventrtDeployment(t *testing.T, m *manifests) (*appsv1.Deployment, *corev1.Container) {
	t.Helper()
	d, ok := m.deployments["eventrt"]
	if !ok {
		t.Fatalf("%s: no Deployment eventrt", m.dir)
	}
	for i := range d.Spec.Template.Spec.Containers {
		if c := &d.Spec.Template.Spec.Containers[i]; c.Name == "eventrt" {
			return d, c
		}
	}
	t.Fatalf("%s: Deployment eventrt has no container eventrt", m.dir)
	return nil, nil
}

// envOf resolves a container's environment as the kubelet would from the objects of the
// build: envFrom first, then env (which wins).
func envOf(m *manifests, c *corev1.Container) (env map[string]string, err error) {
	env = map[string]string{}
	secretValue := func(name, key string, optional bool) (string, bool, error) {
		s, ok := m.secrets[name]
		if !ok {
			if optional {
				return "", false, nil
			}
			return "", false, fmt.Errorf("Secret %q is not in the build", name)
		}
		if v, ok := s.StringData[key]; ok {
			return v, true, nil
		}
		if v, ok := s.Data[key]; ok {
			return string(v), true, nil
		}
		if optional {
			return "", false, nil
		}
		return "", false, fmt.Errorf("Secret %q has no key %q", name, key)
	}
	for _, from := range c.EnvFrom {
		if from.Prefix != "" {
			return nil, fmt.Errorf("envFrom prefix %q: eventrt reads unprefixed names", from.Prefix)
		}
		switch {
		case from.ConfigMapRef != nil:
			cm, ok := m.configMaps[from.ConfigMapRef.Name]
			if !ok {
				return nil, fmt.Errorf("envFrom ConfigMap %q is not in the build", from.ConfigMapRef.Name)
			}
			for k, v := range cm.Data {
				env[k] = v
			}
		case from.SecretRef != nil:
			s, ok := m.secrets[from.SecretRef.Name]
			if !ok {
				return nil, fmt.Errorf("envFrom Secret %q is not in the build", from.SecretRef.Name)
			}
			for k, v := range s.StringData {
				env[k] = v
			}
			for k, v := range s.Data {
				env[k] = string(v)
			}
		}
	}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = e.Value
		case e.ValueFrom.ConfigMapKeyRef != nil:
			ref := e.ValueFrom.ConfigMapKeyRef
			cm, ok := m.configMaps[ref.Name]
			if !ok {
				return nil, fmt.Errorf("env %s: ConfigMap %q is not in the build", e.Name, ref.Name)
			}
			v, ok := cm.Data[ref.Key]
			if !ok {
				return nil, fmt.Errorf("env %s: ConfigMap %q has no key %q", e.Name, ref.Name, ref.Key)
			}
			env[e.Name] = v
		case e.ValueFrom.SecretKeyRef != nil:
			ref := e.ValueFrom.SecretKeyRef
			v, ok, err := secretValue(ref.Name, ref.Key, ref.Optional != nil && *ref.Optional)
			if err != nil {
				return nil, fmt.Errorf("env %s: %w", e.Name, err)
			}
			if ok {
				env[e.Name] = v
			}
		default:
			return nil, fmt.Errorf("env %s: only values, ConfigMap and Secret keys are expected", e.Name)
		}
	}
	return env, nil
}

// TestResourceFilesDecodeStrictly decodes every file a kustomization lists as a resource,
// as written (the builds are checked separately), into its Kubernetes API type.
func TestResourceFilesDecodeStrictly(t *testing.T) {
	type kustomization struct {
		Resources []string `json:"resources"`
	}
	var files []string
	err := filepath.WalkDir(".", func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() != "kustomization.yaml" {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		var k kustomization
		if err := yaml.Unmarshal(data, &k); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		for _, r := range k.Resources {
			p := filepath.Join(filepath.Dir(path), r)
			if st, err := os.Stat(p); err != nil {
				return fmt.Errorf("%s: resource %s: %w", path, r, err)
			} else if !st.IsDir() {
				files = append(files, p)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 10 {
		t.Fatalf("found only %d resource files: %v", len(files), files)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := decodeAll(f, data); err != nil {
			t.Error(err)
		}
	}
}

func TestKustomizationsBuild(t *testing.T) {
	for _, dir := range kustomizations {
		m := build(t, dir)
		if len(m.raw) == 0 {
			t.Errorf("%s: empty build", dir)
		}
	}
	// Each build holds what its purpose needs.
	want := map[string][]string{
		"base":                   {"Deployment/eventrt", "Service/eventrt", "ConfigMap/eventrt-handler", "Secret/eventrt-redis", "PodDisruptionBudget/eventrt", "ServiceAccount/eventrt"},
		"overlays/course":        {"Deployment/eventrt", "ConfigMap/outputkey", "ConfigMap/eventrt-handler"},
		"overlays/course-python": {"Deployment/eventrt", "ConfigMap/outputkey", "ConfigMap/pyfile"},
		"overlays/stream":        {"Deployment/eventrt", "ScaledObject/eventrt", "ServiceMonitor/eventrt", "PrometheusRule/eventrt", "PodDisruptionBudget/eventrt"},
		"overlays/demo":          {"Namespace/eventrt-demo", "Deployment/redis", "Service/redis", "Deployment/eventrt"},
	}
	for dir, objs := range want {
		m := build(t, dir)
		for _, o := range objs {
			if !m.objects[o] {
				t.Errorf("%s: no %s", dir, o)
			}
		}
	}
}

// TestDecodeStrictRefusesUnknownFields shows the strict decoding above has teeth.
func TestDecodeStrictRefusesUnknownFields(t *testing.T) {
	for _, doc := range []string{
		"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {replica: 1}\n",
		"apiVersion: keda.sh/v1alpha1\nkind: ScaledObject\nmetadata: {name: x}\nspec: {scaleTargetRef: {name: x}, maxReplicas: 3}\n",
		"apiVersion: v1\nkind: Pod\nmetadata: {name: x}\n",
	} {
		if _, err := decodeAll("inline", []byte(doc)); err == nil {
			t.Errorf("accepted %q", doc)
		}
	}
}

func TestPrintedYAMLHasNoTabs(t *testing.T) {
	// kubectl apply -k and editors disagree on tabs; none of the sources has one.
	err := filepath.WalkDir(".", func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !(strings.HasSuffix(path, ".yaml") || strings.HasSuffix(path, ".yml")) {
			return err
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		data, err := io.ReadAll(f)
		if err != nil {
			return err
		}
		if i := bytes.IndexByte(data, '\t'); i >= 0 {
			t.Errorf("%s: tab at line %d", path, bytes.Count(data[:i], []byte("\n"))+1)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
