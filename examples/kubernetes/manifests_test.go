// Package kubernetes_test checks the example manifests: that Kubernetes' own
// decoder accepts them (strictly: an unknown or duplicate field fails), and
// that they keep the invariants a Herald sidecar deployment depends on. The
// Herald arguments are parsed by the real `herald serve` flag set, so renaming
// a flag without updating the manifest fails here.
package kubernetes_test

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/heraldhq/herald/sidecar/config"
)

// manifests holds every object of every *.yaml file in this folder.
type manifests struct {
	deployments []*appsv1.Deployment
	services    []*corev1.Service
	secrets     []*corev1.Secret
}

// loadManifests decodes every document of every *.yaml file with the
// Kubernetes strict deserializer.
func loadManifests(t *testing.T) manifests {
	t.Helper()
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{appsv1.AddToScheme, corev1.AddToScheme} {
		if err := add(scheme); err != nil {
			t.Fatal(err)
		}
	}
	decoder := serializer.NewCodecFactory(scheme, serializer.EnableStrict).UniversalDeserializer()

	files, err := filepath.Glob("*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests found: %v", err)
	}
	var m manifests
	for _, file := range files {
		for i, doc := range readDocuments(t, file) {
			obj, gvk, err := decoder.Decode(doc, nil, nil)
			if err != nil {
				t.Fatalf("%s, document %d: %v", file, i+1, err)
			}
			switch o := obj.(type) {
			case *appsv1.Deployment:
				m.deployments = append(m.deployments, o)
			case *corev1.Service:
				m.services = append(m.services, o)
			case *corev1.Secret:
				m.secrets = append(m.secrets, o)
			default:
				t.Fatalf("%s, document %d: unexpected kind %s", file, i+1, gvk.Kind)
			}
		}
	}
	if len(m.deployments) != 1 || len(m.services) == 0 || len(m.secrets) != 1 {
		t.Fatalf("want 1 Deployment, at least 1 Service, 1 Secret; got %d, %d, %d",
			len(m.deployments), len(m.services), len(m.secrets))
	}
	return m
}

// readDocuments splits a multi-document YAML file, skipping empty documents.
func readDocuments(t *testing.T, file string) [][]byte {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := utilyaml.NewYAMLReader(bufio.NewReader(f))
	var docs [][]byte
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return docs
		}
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if len(bytes.TrimSpace(stripComments(doc))) > 0 {
			docs = append(docs, doc)
		}
	}
}

func stripComments(doc []byte) []byte {
	var out bytes.Buffer
	for _, line := range strings.Split(string(doc), "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			out.WriteString(line + "\n")
		}
	}
	return out.Bytes()
}

// parseServeArgs parses a Herald container's arguments with the flag set of
// `herald serve` and validates the resulting configuration.
func parseServeArgs(args []string) (config.Config, error) {
	cfg := config.Default()
	if len(args) == 0 || args[0] != "serve" {
		return cfg, fmt.Errorf("args must start with the serve command, got %q", args)
	}
	fs := flag.NewFlagSet("herald serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	config.RegisterServeFlags(fs, &cfg)
	if err := fs.Parse(args[1:]); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	return cfg, cfg.Validate()
}

// serveFlagForEnv returns the serve flag an HERALD_* variable sets, or "".
func serveFlagForEnv(name string) string {
	cfg := config.Default()
	fs := flag.NewFlagSet("herald serve", flag.ContinueOnError)
	config.RegisterServeFlags(fs, &cfg)
	flagName := strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(name, "HERALD_"), "_", "-"))
	if fs.Lookup(flagName) == nil {
		return ""
	}
	return flagName
}

func TestServeArgsCheckCatchesRenamedFlags(t *testing.T) {
	cases := []struct {
		name    string
		args    []string
		wantErr bool
	}{
		{"valid", []string{"serve", "--socket=/run/h.sock", "--http-addr", "0.0.0.0:8787"}, false},
		{"renamed flag", []string{"serve", "--listen=0.0.0.0:8787"}, true},
		{"misspelled flag", []string{"serve", "--data-directory=/var/lib/herald"}, true},
		{"bad value", []string{"serve", "--shutdown-timeout=soon"}, true},
		{"invalid config", []string{"serve", "--log-format=xml"}, true},
		{"missing command", []string{"--socket=/run/h.sock"}, true},
		{"stray argument", []string{"serve", "extra"}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseServeArgs(tc.args)
			if (err != nil) != tc.wantErr {
				t.Fatalf("parseServeArgs(%q) error = %v, want error %v", tc.args, err, tc.wantErr)
			}
		})
	}
	if got := serveFlagForEnv("HERALD_REDIS_URL"); got != "redis-url" {
		t.Fatalf("HERALD_REDIS_URL maps to %q, want redis-url", got)
	}
	if got := serveFlagForEnv("HERALD_REDIS_ADDRESS"); got != "" {
		t.Fatalf("HERALD_REDIS_ADDRESS maps to %q, want none", got)
	}
}

// pod is the Deployment's pod template with its two containers found by role.
type pod struct {
	spec   corev1.PodSpec
	labels map[string]string
	herald corev1.Container
	host   corev1.Container
	cfg    config.Config
}

func loadPod(t *testing.T, m manifests) pod {
	t.Helper()
	d := m.deployments[0]
	p := pod{spec: d.Spec.Template.Spec, labels: d.Spec.Template.Labels}
	if len(p.spec.Containers) != 2 {
		t.Fatalf("pod has %d containers, want 2 (host and herald)", len(p.spec.Containers))
	}
	var found int
	for _, c := range p.spec.Containers {
		if len(c.Args) > 0 && c.Args[0] == "serve" {
			p.herald = c
			found++
		} else {
			p.host = c
		}
	}
	if found != 1 {
		t.Fatalf("want exactly one container running `herald serve`, found %d", found)
	}
	cfg, err := parseServeArgs(p.herald.Args)
	if err != nil {
		t.Fatalf("herald container args %q: %v", p.herald.Args, err)
	}
	p.cfg = cfg
	if d.Spec.Selector == nil {
		t.Fatal("deployment has no selector")
	}
	for k, v := range d.Spec.Selector.MatchLabels {
		if p.labels[k] != v {
			t.Fatalf("selector %s=%s does not match the pod template labels %v", k, v, p.labels)
		}
	}
	return p
}

// volumeAt returns the volume mounted in c that holds file, with the path of
// file inside that volume.
func volumeAt(t *testing.T, spec corev1.PodSpec, c corev1.Container, file string) (corev1.Volume, string) {
	t.Helper()
	best := corev1.VolumeMount{}
	for _, vm := range c.VolumeMounts {
		mp := path.Clean(vm.MountPath)
		if strings.HasPrefix(file, mp+"/") && len(mp) > len(best.MountPath) {
			best = vm
		}
	}
	if best.Name == "" {
		t.Fatalf("container %s mounts no volume holding %s", c.Name, file)
	}
	rel := strings.TrimPrefix(file, path.Clean(best.MountPath)+"/")
	if best.SubPath != "" {
		rel = path.Join(best.SubPath, rel)
	}
	for _, v := range spec.Volumes {
		if v.Name == best.Name {
			return v, rel
		}
	}
	t.Fatalf("container %s mounts undeclared volume %s", c.Name, best.Name)
	return corev1.Volume{}, ""
}

// argValue returns the value of --name in args (as --name=v or --name v).
func argValue(args []string, name string) (string, bool) {
	for i, a := range args {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v, true
		}
		if a == "--"+name && i+1 < len(args) {
			return args[i+1], true
		}
	}
	return "", false
}

// containerPort resolves a probe's or Service's port (a number or a name).
func containerPort(t *testing.T, c corev1.Container, p intstr.IntOrString) int32 {
	t.Helper()
	if p.Type == intstr.Int {
		return p.IntVal
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return cp.ContainerPort
		}
	}
	t.Fatalf("container %s has no port named %q", c.Name, p.StrVal)
	return 0
}

func TestManifestsDecode(t *testing.T) {
	m := loadManifests(t)
	t.Logf("decoded %d deployment(s), %d service(s), %d secret(s)",
		len(m.deployments), len(m.services), len(m.secrets))
}

func TestSocketSharedThroughEmptyDir(t *testing.T) {
	p := loadPod(t, loadManifests(t))
	heraldSocket := p.cfg.SocketPath()
	hostSocket, ok := argValue(p.host.Args, "herald-socket")
	if !ok {
		t.Fatalf("host container %s has no --herald-socket argument: %q", p.host.Name, p.host.Args)
	}

	hv, hrel := volumeAt(t, p.spec, p.herald, heraldSocket)
	av, arel := volumeAt(t, p.spec, p.host, hostSocket)
	if hv.EmptyDir == nil {
		t.Fatalf("the socket volume %s is not an emptyDir", hv.Name)
	}
	if hv.Name != av.Name || hrel != arel {
		t.Fatalf("herald listens on %s (volume %s, %s), host dials %s (volume %s, %s)",
			heraldSocket, hv.Name, hrel, hostSocket, av.Name, arel)
	}
	if hv.Name == mustVolume(t, p, p.cfg.DataDir+"/herald.db").Name {
		t.Fatalf("data dir shares the socket volume %s; it needs its own", hv.Name)
	}
}

func mustVolume(t *testing.T, p pod, file string) corev1.Volume {
	t.Helper()
	v, _ := volumeAt(t, p.spec, p.herald, file)
	return v
}

func TestDataDirOnItsOwnVolume(t *testing.T) {
	p := loadPod(t, loadManifests(t))
	v := mustVolume(t, p, p.cfg.DBPath())
	if v.EmptyDir == nil && v.PersistentVolumeClaim == nil && v.Ephemeral == nil {
		t.Fatalf("data volume %s is neither an emptyDir nor a claim", v.Name)
	}
	for _, vm := range p.host.VolumeMounts {
		if vm.Name == v.Name {
			t.Fatalf("host container mounts Herald's data volume %s", v.Name)
		}
	}
	for _, vm := range p.herald.VolumeMounts {
		if vm.Name == v.Name && vm.ReadOnly {
			t.Fatalf("data volume %s is mounted read-only", v.Name)
		}
	}
}

func TestProbes(t *testing.T) {
	p := loadPod(t, loadManifests(t))
	_, port, err := net.SplitHostPort(p.cfg.HTTPAddr)
	if err != nil {
		t.Fatal(err)
	}
	httpPort, _ := strconv.Atoi(port)
	if httpPort != 8787 {
		t.Fatalf("--http-addr port = %d, want 8787", httpPort)
	}
	if host, _, _ := net.SplitHostPort(p.cfg.HTTPAddr); host != "0.0.0.0" && host != "" {
		t.Fatalf("--http-addr %s does not listen on the pod's address", p.cfg.HTTPAddr)
	}
	cases := []struct {
		name  string
		probe *corev1.Probe
		path  string
	}{
		{"readiness", p.herald.ReadinessProbe, "/readyz"},
		{"liveness", p.herald.LivenessProbe, "/healthz"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.probe == nil || tc.probe.HTTPGet == nil {
				t.Fatalf("herald has no HTTP %s probe", tc.name)
			}
			if tc.probe.HTTPGet.Path != tc.path {
				t.Fatalf("%s probe path = %s, want %s", tc.name, tc.probe.HTTPGet.Path, tc.path)
			}
			if got := containerPort(t, p.herald, tc.probe.HTTPGet.Port); int(got) != httpPort {
				t.Fatalf("%s probe port = %d, want --http-addr's %d", tc.name, got, httpPort)
			}
		})
	}
}

func TestSecrets(t *testing.T) {
	m := loadManifests(t)
	p := loadPod(t, m)
	secret := func(name, key string) {
		t.Helper()
		for _, s := range m.secrets {
			if s.Name == name {
				if _, ok := s.StringData[key]; ok {
					return
				}
				if _, ok := s.Data[key]; ok {
					return
				}
				t.Fatalf("secret %s has no key %s", name, key)
			}
		}
		t.Fatalf("no example of secret %s", name)
	}

	var redis *corev1.EnvVar
	for i, e := range p.herald.Env {
		if strings.HasPrefix(e.Name, "HERALD_") && serveFlagForEnv(e.Name) == "" {
			t.Errorf("env %s sets no `herald serve` flag", e.Name)
		}
		if e.Name == "HERALD_REDIS_URL" {
			redis = &p.herald.Env[i]
		}
	}
	if redis == nil || redis.ValueFrom == nil || redis.ValueFrom.SecretKeyRef == nil {
		t.Fatal("HERALD_REDIS_URL is not taken from a secretKeyRef")
	}
	secret(redis.ValueFrom.SecretKeyRef.Name, redis.ValueFrom.SecretKeyRef.Key)
	if _, ok := argValue(p.herald.Args, "redis-url"); ok {
		t.Fatal("--redis-url is in the args, where the password would show")
	}

	if p.cfg.JWTSecretFile == "" {
		t.Fatal("herald has no --jwt-secret-file")
	}
	v, rel := volumeAt(t, p.spec, p.herald, p.cfg.JWTSecretFile)
	if v.Secret == nil {
		t.Fatalf("--jwt-secret-file %s is not on a Secret volume", p.cfg.JWTSecretFile)
	}
	key := rel
	if len(v.Secret.Items) > 0 {
		key = ""
		for _, it := range v.Secret.Items {
			if it.Path == rel {
				key = it.Key
			}
		}
		if key == "" {
			t.Fatalf("secret volume %s has no item at path %s", v.Name, rel)
		}
	}
	secret(v.Secret.SecretName, key)
}

func TestShutdownAndSecurity(t *testing.T) {
	p := loadPod(t, loadManifests(t))
	grace := p.spec.TerminationGracePeriodSeconds
	if grace == nil {
		t.Fatal("terminationGracePeriodSeconds is not set")
	}
	need := p.cfg.ShutdownTimeout
	if pre := p.herald.Lifecycle; pre != nil && pre.PreStop != nil && pre.PreStop.Sleep != nil {
		need += time.Duration(pre.PreStop.Sleep.Seconds) * time.Second
	}
	if time.Duration(*grace)*time.Second <= need {
		t.Fatalf("terminationGracePeriodSeconds %ds leaves no margin over preStop + --shutdown-timeout (%s)",
			*grace, need)
	}

	if sc := p.spec.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
		t.Fatal("pod does not set runAsNonRoot")
	}
	for _, c := range p.spec.Containers {
		sc := c.SecurityContext
		if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			t.Errorf("container %s: root file system is not read-only", c.Name)
		}
		if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			t.Errorf("container %s: privilege escalation not disabled", c.Name)
		}
		if sc != nil && sc.RunAsUser != nil && *sc.RunAsUser == 0 {
			t.Errorf("container %s runs as root", c.Name)
		}
		if c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
			t.Errorf("container %s: memory request and limit must be set", c.Name)
		}
		if c.Resources.Requests.Cpu().IsZero() {
			t.Errorf("container %s: cpu request must be set", c.Name)
		}
	}
	// The socket is mode 0660: the host reaches it through a shared group.
	if hg, ag := groupOf(p, p.herald), groupOf(p, p.host); hg == nil || ag == nil || *hg != *ag {
		if p.spec.SecurityContext.FSGroup == nil {
			t.Fatal("herald and host share no group, so the host cannot open the 0660 socket")
		}
	}
}

func groupOf(p pod, c corev1.Container) *int64 {
	if c.SecurityContext != nil && c.SecurityContext.RunAsGroup != nil {
		return c.SecurityContext.RunAsGroup
	}
	if p.spec.SecurityContext != nil {
		return p.spec.SecurityContext.RunAsGroup
	}
	return nil
}

func TestServiceTargetsWebSocketPort(t *testing.T) {
	m := loadManifests(t)
	p := loadPod(t, m)
	_, port, _ := net.SplitHostPort(p.cfg.HTTPAddr)
	wsPort, _ := strconv.Atoi(port)

	var found bool
	for _, s := range m.services {
		if !selects(s.Spec.Selector, p.labels) {
			continue
		}
		for _, sp := range s.Spec.Ports {
			if hasPort(p.herald, sp.TargetPort) && int(containerPort(t, p.herald, sp.TargetPort)) == wsPort {
				found = true
				if s.Spec.SessionAffinity == corev1.ServiceAffinityClientIP {
					t.Errorf("service %s sets ClientIP affinity; every replica has every notification", s.Name)
				}
				t.Logf("service %s port %d -> herald %d", s.Name, sp.Port, wsPort)
			}
		}
	}
	if !found {
		t.Fatalf("no Service selecting the pods targets Herald's WebSocket port %d", wsPort)
	}
}

func selects(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// hasPort reports whether a named target port is declared on c (a numeric
// one needs no declaration).
func hasPort(c corev1.Container, p intstr.IntOrString) bool {
	if p.Type == intstr.Int {
		return true
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return true
		}
	}
	return false
}
