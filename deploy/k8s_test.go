package deploy

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"

	"gopkg.in/yaml.v3"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/cosell/cosell/e2e/stack"
)

// overlays are the installable variants under deploy/k8s/overlays.
var overlays = []string{"dev", "prod"}

// prodSecrets are the Secrets the prod overlay expects the operator to
// create (documented in its kustomization.yaml).
var prodSecrets = []string{"cosell-database", "cosell-partnercenter", "cosell-salesforce"}

// manifest is one overlay built and decoded into the Kubernetes types.
type manifest struct {
	objects     []runtime.Object
	deployments []*appsv1.Deployment
	statefuls   []*appsv1.StatefulSet
	jobs        []*batchv1.Job
	services    map[string]*corev1.Service
	configMaps  map[string]*corev1.ConfigMap
	secrets     map[string]*corev1.Secret
	ingresses   []*networkingv1.Ingress
	policies    []*networkingv1.NetworkPolicy
	hpas        []*autoscalingv2.HorizontalPodAutoscaler
	pdbs        []*policyv1.PodDisruptionBudget
}

// k8sScheme knows exactly the API groups the manifests may use; anything
// else fails to decode.
func k8sScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(corev1.AddToScheme(s))
	utilruntime.Must(appsv1.AddToScheme(s))
	utilruntime.Must(batchv1.AddToScheme(s))
	utilruntime.Must(networkingv1.AddToScheme(s))
	utilruntime.Must(policyv1.AddToScheme(s))
	utilruntime.Must(autoscalingv2.AddToScheme(s))
	return s
}

// buildOverlay runs kustomize on an overlay and decodes every object
// strictly: unknown or duplicate fields are errors.
func buildOverlay(t *testing.T, overlay string) *manifest {
	t.Helper()
	dir := filepath.Join(repoRoot(t), "deploy", "k8s", "overlays", overlay)
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	rm, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", overlay, err)
	}
	decoder := serializer.NewCodecFactory(k8sScheme(), serializer.EnableStrict).UniversalDeserializer()
	m := &manifest{services: map[string]*corev1.Service{}, configMaps: map[string]*corev1.ConfigMap{}, secrets: map[string]*corev1.Secret{}}
	for _, r := range rm.Resources() {
		y, err := r.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		obj, gvk, err := decoder.Decode(y, nil, nil)
		if err != nil {
			t.Errorf("%s: %s %s: %v", overlay, r.GetKind(), r.GetName(), err)
			continue
		}
		m.objects = append(m.objects, obj)
		switch o := obj.(type) {
		case *appsv1.Deployment:
			m.deployments = append(m.deployments, o)
		case *appsv1.StatefulSet:
			m.statefuls = append(m.statefuls, o)
		case *batchv1.Job:
			m.jobs = append(m.jobs, o)
		case *corev1.Service:
			m.services[o.Name] = o
		case *corev1.ConfigMap:
			m.configMaps[o.Name] = o
		case *corev1.Secret:
			m.secrets[o.Name] = o
		case *networkingv1.Ingress:
			m.ingresses = append(m.ingresses, o)
		case *networkingv1.NetworkPolicy:
			m.policies = append(m.policies, o)
		case *autoscalingv2.HorizontalPodAutoscaler:
			m.hpas = append(m.hpas, o)
		case *policyv1.PodDisruptionBudget:
			m.pdbs = append(m.pdbs, o)
		case *corev1.ServiceAccount:
		default:
			t.Errorf("%s: unexpected kind %v", overlay, gvk)
		}
	}
	return m
}

// podSpecs returns every pod template of the workloads, by workload name.
func (m *manifest) podSpecs() map[string]*corev1.PodTemplateSpec {
	out := map[string]*corev1.PodTemplateSpec{}
	for _, d := range m.deployments {
		out["Deployment/"+d.Name] = &d.Spec.Template
	}
	for _, s := range m.statefuls {
		out["StatefulSet/"+s.Name] = &s.Spec.Template
	}
	for _, j := range m.jobs {
		out["Job/"+j.Name] = &j.Spec.Template
	}
	return out
}

// TestKustomizeOverlays builds every overlay with kustomize's Go API,
// decodes each object strictly into the Kubernetes API types, and checks
// the invariants the issue asks for.
func TestKustomizeOverlays(t *testing.T) {
	for _, overlay := range overlays {
		t.Run(overlay, func(t *testing.T) {
			m := buildOverlay(t, overlay)
			if t.Failed() {
				return
			}
			checkWorkloads(t, overlay, m)
			checkServices(t, m)
			checkExposure(t, m)
			checkReferences(t, overlay, m)
			checkMigrationJob(t, m)
			checkPolicies(t, m)
			checkIngressScaling(t, m)
		})
	}
}

// checkWorkloads: probes, resources, GOMEMLIMIT, non-root read-only
// security contexts and a grace period longer than the shutdown.
func checkWorkloads(t *testing.T, overlay string, m *manifest) {
	shutdown := 20 * time.Second
	if cm := m.configMaps[findGenerated(m, "cosell-common")]; cm != nil {
		if v := cm.Data["SHUTDOWN_TIMEOUT"]; v != "" {
			d, err := time.ParseDuration(v)
			if err != nil {
				t.Fatalf("SHUTDOWN_TIMEOUT %q: %v", v, err)
			}
			shutdown = d
		}
	} else {
		t.Errorf("no cosell-common ConfigMap")
	}
	names := map[string]bool{}
	for name, pod := range m.podSpecs() {
		spec := pod.Spec
		isJob := strings.HasPrefix(name, "Job/")
		psc := spec.SecurityContext
		if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
			t.Errorf("%s: pod securityContext.runAsNonRoot is not true", name)
		}
		if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
			t.Errorf("%s: mounts a service account token it does not need", name)
		}
		for _, c := range append(slices.Clone(spec.InitContainers), spec.Containers...) {
			where := name + "/" + c.Name
			checkEnvReferences(t, where, c, m)
			sc := c.SecurityContext
			if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
				sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
				sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
				t.Errorf("%s: securityContext must set readOnlyRootFilesystem, allowPrivilegeEscalation=false, drop ALL", where)
			}
			if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
				t.Errorf("%s: resources need cpu and memory requests and a memory limit", where)
			}
		}
		for _, c := range spec.Containers {
			where := name + "/" + c.Name
			if !isJob && (c.ReadinessProbe == nil || c.LivenessProbe == nil) {
				t.Errorf("%s: needs readiness and liveness probes", where)
			}
			if pod.Labels["app.kubernetes.io/component"] != "service" {
				continue
			}
			names[c.Name] = true
			if c.ReadinessProbe.HTTPGet == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" ||
				c.LivenessProbe.HTTPGet == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" {
				t.Errorf("%s: readiness must GET /readyz and liveness /healthz", where)
			}
			limit := c.Resources.Limits.Memory()
			var gomem string
			for _, e := range c.Env {
				if e.Name == "GOMEMLIMIT" {
					gomem = e.Value
				}
			}
			q, err := resource.ParseQuantity(strings.TrimSuffix(gomem, "B"))
			if err != nil || q.Cmp(*limit) >= 0 || q.Value() < limit.Value()*6/10 {
				t.Errorf("%s: GOMEMLIMIT %q must be set between 60%% and 100%% of the memory limit %s", where, gomem, limit)
			}
			grace := time.Duration(*spec.TerminationGracePeriodSeconds) * time.Second
			var preStop time.Duration
			if c.Lifecycle != nil && c.Lifecycle.PreStop != nil && c.Lifecycle.PreStop.Sleep != nil {
				preStop = time.Duration(c.Lifecycle.PreStop.Sleep.Seconds) * time.Second
			}
			if grace <= shutdown+preStop {
				t.Errorf("%s: terminationGracePeriodSeconds %s does not outlast preStop %s + SHUTDOWN_TIMEOUT %s", where, grace, preStop, shutdown)
			}
			if !strings.Contains(c.Image, "/"+c.Name) || !strings.Contains(c.Image, ":") {
				t.Errorf("%s: image %q is not a tagged image of %s", where, c.Image, c.Name)
			}
		}
	}
	for _, s := range stack.Services() {
		if !names[s] {
			t.Errorf("no Deployment runs %s", s)
		}
	}
	if overlay == "dev" {
		for _, infra := range []string{"StatefulSet/nats", "StatefulSet/postgres", "Deployment/jaeger"} {
			if m.podSpecs()[infra] == nil {
				t.Errorf("dev lacks %s", infra)
			}
		}
		if pod := m.podSpecs()["StatefulSet/nats"]; pod != nil && !slices.Contains(pod.Spec.Containers[0].Args, "--jetstream") {
			t.Errorf("dev NATS runs without JetStream: %v", pod.Spec.Containers[0].Args)
		}
	} else {
		for name := range m.podSpecs() {
			if pod := m.podSpecs()[name]; pod.Labels["app.kubernetes.io/component"] == "infrastructure" {
				t.Errorf("%s runs %s; prod references external infrastructure", overlay, name)
			}
		}
	}
}

// envRef is a $(VAR) reference in an env value, args or command.
var envRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// checkEnvReferences: the kubelet expands $(VAR) in an env value only with
// variables defined before it (envFrom, then earlier env entries), and in
// args and command with any of them; anything else stays literal text.
func checkEnvReferences(t *testing.T, where string, c corev1.Container, m *manifest) {
	defined := map[string]bool{}
	for _, ef := range c.EnvFrom {
		if ef.ConfigMapRef != nil {
			if cm := m.configMaps[ef.ConfigMapRef.Name]; cm != nil {
				for k := range cm.Data {
					defined[ef.Prefix+k] = true
				}
			}
		}
		if ef.SecretRef != nil {
			if s := m.secrets[ef.SecretRef.Name]; s != nil {
				for k := range s.Data {
					defined[ef.Prefix+k] = true
				}
				for k := range s.StringData {
					defined[ef.Prefix+k] = true
				}
			}
		}
	}
	for _, e := range c.Env {
		for _, ref := range envRef.FindAllStringSubmatch(e.Value, -1) {
			if !defined[ref[1]] {
				t.Errorf("%s: env %s refers to $(%s), which is not defined before it; Kubernetes would leave it unexpanded", where, e.Name, ref[1])
			}
		}
		defined[e.Name] = true
	}
	for _, a := range append(slices.Clone(c.Command), c.Args...) {
		for _, ref := range envRef.FindAllStringSubmatch(a, -1) {
			if !defined[ref[1]] {
				t.Errorf("%s: %q refers to $(%s), which the container does not define", where, a, ref[1])
			}
		}
	}
}

// checkServices: every Service selects pods of some workload, and every
// Deployment selector matches its own template.
func checkServices(t *testing.T, m *manifest) {
	for _, d := range m.deployments {
		sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
		if err != nil || !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
			t.Errorf("Deployment %s: selector does not match its pod template", d.Name)
		}
	}
	for name, svc := range m.services {
		if !m.selectsPods(labels.SelectorFromSet(svc.Spec.Selector)) {
			t.Errorf("Service %s selects no pods", name)
		}
	}
}

// selectsPods reports whether a selector matches some workload's pods.
func (m *manifest) selectsPods(sel labels.Selector) bool {
	for _, pod := range m.podSpecs() {
		if sel.Matches(labels.Set(pod.Labels)) {
			return true
		}
	}
	return false
}

// checkExposure: one Ingress, TLS, only the webhook path to ingress; no
// Service of type NodePort or LoadBalancer.
func checkExposure(t *testing.T, m *manifest) {
	if len(m.ingresses) != 1 {
		t.Fatalf("%d Ingresses, want exactly the webhook one", len(m.ingresses))
	}
	ing := m.ingresses[0]
	if ing.Spec.DefaultBackend != nil {
		t.Errorf("Ingress %s has a default backend", ing.Name)
	}
	if len(ing.Spec.TLS) == 0 {
		t.Errorf("Ingress %s has no TLS", ing.Name)
	}
	for _, rule := range ing.Spec.Rules {
		tls := false
		for _, t := range ing.Spec.TLS {
			tls = tls || slices.Contains(t.Hosts, rule.Host)
		}
		if !tls || rule.Host == "" {
			t.Errorf("Ingress host %q is not covered by TLS", rule.Host)
		}
		for _, p := range rule.HTTP.Paths {
			if p.Path != "/webhooks/partnercenter" || p.PathType == nil || *p.PathType != networkingv1.PathTypeExact {
				t.Errorf("Ingress routes %s %q; only Exact /webhooks/partnercenter may be public", pathType(p.PathType), p.Path)
			}
			b := p.Backend.Service
			if b == nil || b.Name != "ingress" {
				t.Errorf("Ingress path %q goes to %v, want the ingress service", p.Path, b)
				continue
			}
			svc := m.services[b.Name]
			if svc == nil || !slices.ContainsFunc(svc.Spec.Ports, func(sp corev1.ServicePort) bool {
				return sp.Name == b.Port.Name && b.Port.Name != "" || sp.Port == b.Port.Number
			}) {
				t.Errorf("Ingress backend %s:%v does not exist", b.Name, b.Port)
			}
		}
	}
	for name, svc := range m.services {
		if svc.Spec.Type == corev1.ServiceTypeNodePort || svc.Spec.Type == corev1.ServiceTypeLoadBalancer {
			t.Errorf("Service %s is exposed as %s", name, svc.Spec.Type)
		}
	}
}

// pathType prints an optional path type.
func pathType(p *networkingv1.PathType) string {
	if p == nil {
		return "<unset>"
	}
	return string(*p)
}

// findGenerated returns the name of the generated ConfigMap or Secret with
// base name base (kustomize appends a content hash).
func findGenerated(m *manifest, base string) string {
	for name := range m.configMaps {
		if name == base || strings.HasPrefix(name, base+"-") && len(name) == len(base)+11 {
			return name
		}
	}
	for name := range m.secrets {
		if name == base || strings.HasPrefix(name, base+"-") && len(name) == len(base)+11 {
			return name
		}
	}
	return ""
}

// checkReferences: every ConfigMap and Secret a pod uses exists (dev, and
// prod apart from its documented external Secrets), with the keys used.
func checkReferences(t *testing.T, overlay string, m *manifest) {
	cmKey := func(where, name, key string, optional *bool) {
		cm := m.configMaps[name]
		switch {
		case cm == nil:
			t.Errorf("%s: ConfigMap %q does not exist", where, name)
		case key != "" && cm.Data[key] == "" && (optional == nil || !*optional):
			t.Errorf("%s: ConfigMap %s has no key %q", where, name, key)
		}
	}
	secretKey := func(where, name, key string, optional *bool) {
		s := m.secrets[name]
		if s == nil {
			if overlay == "prod" && slices.Contains(prodSecrets, name) {
				return
			}
			t.Errorf("%s: Secret %q does not exist", where, name)
			return
		}
		_, has := s.Data[key]
		_, hasString := s.StringData[key]
		if key != "" && !has && !hasString && (optional == nil || !*optional) {
			t.Errorf("%s: Secret %s has no key %q", where, name, key)
		}
	}
	for wl, pod := range m.podSpecs() {
		for _, c := range append(slices.Clone(pod.Spec.InitContainers), pod.Spec.Containers...) {
			where := wl + "/" + c.Name
			for _, e := range c.EnvFrom {
				if e.ConfigMapRef != nil {
					cmKey(where, e.ConfigMapRef.Name, "", e.ConfigMapRef.Optional)
				}
				if e.SecretRef != nil {
					secretKey(where, e.SecretRef.Name, "", e.SecretRef.Optional)
				}
			}
			for _, e := range c.Env {
				if e.ValueFrom == nil {
					continue
				}
				if r := e.ValueFrom.ConfigMapKeyRef; r != nil {
					cmKey(where, r.Name, r.Key, r.Optional)
				}
				if r := e.ValueFrom.SecretKeyRef; r != nil {
					secretKey(where, r.Name, r.Key, r.Optional)
				}
			}
		}
		for _, v := range pod.Spec.Volumes {
			if v.ConfigMap != nil {
				cmKey(wl+" volume "+v.Name, v.ConfigMap.Name, "", v.ConfigMap.Optional)
			}
			if v.Secret != nil {
				secretKey(wl+" volume "+v.Name, v.Secret.SecretName, "", v.Secret.Optional)
			}
		}
	}
	// The mapping shipped to the cluster is the mapper's default.
	cm := m.configMaps[findGenerated(m, "cosell-mapping")]
	want, err := os.ReadFile(filepath.Join(repoRoot(t), "services", "mapper", "mapping", "default.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if cm == nil || cm.Data["mapping.yaml"] != string(want) {
		t.Errorf("ConfigMap cosell-mapping differs from services/mapper/mapping/default.yaml; copy it to deploy/k8s/base/mapping.yaml")
	}
	// Each service's required settings come from its ConfigMaps in the
	// overlay (prod fills placeholders the operator replaces).
	required := map[string][]string{
		"partnercenter-adapter": {"PC_API_BASE_URL", "PC_LOGIN_BASE_URL", "PC_TENANT_ID", "PC_CLIENT_ID", "PC_AUTH_MODE", "PC_MODE"},
		"salesforce-adapter":    {"SF_LOGIN_URL", "SF_AUTH_MODE", "SF_CLIENT_ID"},
		"mapper":                {"MAPPING_FILE"},
	}
	for svc, keys := range required {
		cm := m.configMaps[findGenerated(m, svc+"-config")]
		for _, k := range keys {
			if cm == nil || cm.Data[k] == "" {
				t.Errorf("%s: %s is not set in %s-config", overlay, k, svc)
			}
		}
	}
}

// checkMigrationJob: one Job that runs `migrate` with every service's image.
func checkMigrationJob(t *testing.T, m *manifest) {
	if len(m.jobs) != 1 {
		t.Fatalf("%d Jobs, want the migration Job", len(m.jobs))
	}
	pod := m.jobs[0].Spec.Template.Spec
	var migrated []string
	for _, c := range append(slices.Clone(pod.InitContainers), pod.Containers...) {
		if !slices.Equal(c.Args, []string{"migrate"}) {
			t.Errorf("migration container %s runs %v", c.Name, c.Args)
		}
		if !strings.Contains(c.Image, "/"+c.Name+":") {
			t.Errorf("migration container %s uses image %s", c.Name, c.Image)
		}
		migrated = append(migrated, c.Name)
	}
	slices.Sort(migrated)
	if want := slices.Sorted(slices.Values(stack.Services())); !slices.Equal(migrated, want) {
		t.Errorf("migration Job migrates %v, want %v", migrated, want)
	}
	if pod.RestartPolicy != corev1.RestartPolicyNever && pod.RestartPolicy != corev1.RestartPolicyOnFailure {
		t.Errorf("migration Job restartPolicy %q", pod.RestartPolicy)
	}
}

// checkPolicies: a default deny, and every cosell pod admitted from
// somewhere (ingress from the controller, all from monitoring).
func checkPolicies(t *testing.T, m *manifest) {
	deny := false
	for _, p := range m.policies {
		if len(p.Spec.PodSelector.MatchLabels) == 0 && len(p.Spec.PodSelector.MatchExpressions) == 0 &&
			slices.Contains(p.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) && len(p.Spec.Ingress) == 0 {
			deny = true
		}
		sel, err := metav1.LabelSelectorAsSelector(&p.Spec.PodSelector)
		if err != nil {
			t.Errorf("NetworkPolicy %s: %v", p.Name, err)
		} else if !m.selectsPods(sel) {
			t.Errorf("NetworkPolicy %s selects no pods", p.Name)
		}
	}
	if !deny {
		t.Error("no default-deny ingress NetworkPolicy")
	}
	// The webhook port of the ingress pods is reachable from outside the
	// namespace (the controller); no other service's is, except for scraping.
	for _, p := range m.policies {
		for _, rule := range p.Spec.Ingress {
			for _, peer := range rule.From {
				if peer.IPBlock != nil {
					t.Errorf("NetworkPolicy %s admits an IP block; admit the controller's namespace", p.Name)
				}
			}
		}
	}
}

// checkIngressScaling: the HPA and PDB target the ingress Deployment.
func checkIngressScaling(t *testing.T, m *manifest) {
	if len(m.hpas) != 1 || m.hpas[0].Spec.ScaleTargetRef.Kind != "Deployment" || m.hpas[0].Spec.ScaleTargetRef.Name != "ingress" {
		t.Errorf("want one HorizontalPodAutoscaler for Deployment ingress, got %d", len(m.hpas))
	} else if h := m.hpas[0]; h.Spec.MinReplicas == nil || *h.Spec.MinReplicas < 1 || h.Spec.MaxReplicas < *h.Spec.MinReplicas {
		t.Errorf("HPA bounds %v..%d", h.Spec.MinReplicas, h.Spec.MaxReplicas)
	}
	for _, d := range m.deployments {
		if d.Name == "ingress" && d.Spec.Replicas != nil {
			t.Errorf("Deployment ingress sets replicas; the HPA owns them")
		}
	}
	if len(m.pdbs) != 1 {
		t.Fatalf("want one PodDisruptionBudget, got %d", len(m.pdbs))
	}
	sel, err := metav1.LabelSelectorAsSelector(m.pdbs[0].Spec.Selector)
	var ingress *appsv1.Deployment
	for _, d := range m.deployments {
		if d.Name == "ingress" {
			ingress = d
		}
	}
	if err != nil || ingress == nil || !sel.Matches(labels.Set(ingress.Spec.Template.Labels)) {
		t.Errorf("PodDisruptionBudget %s does not select the ingress pods", m.pdbs[0].Name)
	}
}

// alertRules is the Prometheus rule-file format, decoded strictly.
type alertRules struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// loadAlertRules decodes deploy/k8s/base/alerts.yaml strictly.
func loadAlertRules(t testing.TB) alertRules {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy", "k8s", "base", "alerts.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var rules alertRules
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&rules); err != nil {
		t.Fatalf("alerts.yaml: %v", err)
	}
	return rules
}

// TestAlertRules checks the shipped alert rules: a well-formed rule file
// with the alerts the runbook documents, each with a severity, a summary,
// a runbook link and balanced PromQL whose selectors parse (which metrics
// the services really export is TestComposeStackComesUp's part).
func TestAlertRules(t *testing.T) {
	rules := loadAlertRules(t)
	seen := map[string]bool{}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if seen[r.Alert] {
				t.Errorf("alert %s defined twice", r.Alert)
			}
			seen[r.Alert] = true
			if r.Expr == "" || strings.Count(r.Expr, "(") != strings.Count(r.Expr, ")") || strings.Count(r.Expr, "{") != strings.Count(r.Expr, "}") {
				t.Errorf("%s: expression %q is empty or unbalanced", r.Alert, r.Expr)
			}
			if sels, err := promSelectors(r.Expr); err != nil || len(sels) == 0 {
				t.Errorf("%s: selectors of %q: %v %v", r.Alert, r.Expr, sels, err)
			}
			if r.For != "" {
				if _, err := time.ParseDuration(r.For); err != nil {
					t.Errorf("%s: for %q: %v", r.Alert, r.For, err)
				}
			}
			if sev := r.Labels["severity"]; sev != "warning" && sev != "critical" {
				t.Errorf("%s: severity %q", r.Alert, sev)
			}
			if r.Annotations["summary"] == "" || !strings.HasPrefix(r.Annotations["runbook"], "docs/operations.md#") {
				t.Errorf("%s: needs a summary and a runbook link", r.Alert)
			}
		}
	}
	for _, a := range []string{"CosellDeadLettersWaiting", "CosellConsumerLag", "CosellSalesforceBudgetLow",
		"CosellWebhookSignatureFailures", "CosellTokenRefreshFailing", "CosellSweepNotRunning",
		"CosellSalesforcePollNotRunning", "CosellConsumerRestarting"} {
		if !seen[a] {
			t.Errorf("alert %s missing", a)
		}
	}
	// Every runbook link lands on a heading of the runbook.
	doc, err := os.ReadFile(filepath.Join(repoRoot(t), "docs", "operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	anchors := map[string]bool{}
	for _, line := range strings.Split(string(doc), "\n") {
		if h, ok := strings.CutPrefix(line, "#"); ok {
			anchors[headingAnchor(strings.TrimLeft(h, "# "))] = true
		}
	}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if a, _ := strings.CutPrefix(r.Annotations["runbook"], "docs/operations.md#"); !anchors[a] {
				t.Errorf("%s: runbook link #%s matches no heading of docs/operations.md", r.Alert, a)
			}
		}
	}
}

// headingAnchor is the anchor GitHub gives a Markdown heading: lower case,
// punctuation dropped, spaces as hyphens.
func headingAnchor(h string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(h)) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}
