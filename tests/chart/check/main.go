// check: the assertions of the chart test (tests/chart/run.sh).
//
//	check manifests -manifests FILE [flags]   one rendering of the chart (see the flags)
//	check static -chart DIR -dockerfile FILE [-readme FILE] [-write-readme]
//	                                           the chart's files and the Dockerfile
//
// Each assertion prints "ok - ..." or "not ok - ...", and the run ends with
// "N passed, N failed"; the exit status is 1 when anything failed.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"

	"github.com/xeipuuv/gojsonschema"
	"gopkg.in/yaml.v3"
)

var passed, failed int

func check(ok bool, format string, a ...any) bool {
	msg := fmt.Sprintf(format, a...)
	if ok {
		passed++
		fmt.Println("ok - " + msg)
	} else {
		failed++
		fmt.Println("not ok - " + msg)
	}
	return ok
}

func fail(format string, a ...any) { check(false, format, a...) }

func finish() {
	fmt.Printf("%d passed, %d failed\n", passed, failed)
	if failed > 0 {
		os.Exit(1)
	}
}

// ---- generic access ---------------------------------------------------------------------

type obj = map[string]any

func get(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

func str(v any, keys ...string) string {
	s, _ := get(v, keys...).(string)
	return s
}

func list(v any, keys ...string) []any {
	l, _ := get(v, keys...).([]any)
	return l
}

func asMap(v any, keys ...string) obj {
	m, _ := get(v, keys...).(map[string]any)
	return m
}

// num returns a YAML/JSON number as float64 (ok false when not a number).
func num(v any) (float64, bool) {
	switch n := v.(type) {
	case int:
		return float64(n), true
	case int64:
		return float64(n), true
	case uint64:
		return float64(n), true
	case float64:
		return n, true
	case json.Number:
		f, err := n.Float64()
		return f, err == nil
	}
	return 0, false
}

func isInt(v any) bool {
	switch n := v.(type) {
	case int, int64, uint64:
		return true
	case json.Number:
		_, err := n.Int64()
		return err == nil
	case float64:
		return n == float64(int64(n))
	}
	return false
}

func keys(m obj) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func onlyKeys(m obj, allowed ...string) []string {
	var bad []string
	for _, k := range keys(m) {
		found := false
		for _, a := range allowed {
			if k == a {
				found = true
			}
		}
		if !found {
			bad = append(bad, k)
		}
	}
	return bad
}

// subset: every label of sel is in labels with the same value.
func subset(sel, labels obj) bool {
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// ---- manifests ----------------------------------------------------------------------------

type manifest struct {
	obj
	source string
}

func (m manifest) kind() string { return str(m.obj, "kind") }
func (m manifest) name() string { return str(m.obj, "metadata", "name") }
func (m manifest) id() string   { return m.kind() + "/" + m.name() }

func readManifests(file string) ([]manifest, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var out []manifest
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for i := 0; ; i++ {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		var m obj
		if err := n.Decode(&m); err != nil { // yaml.v3 refuses duplicate keys here
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		src := ""
		if strings.HasPrefix(n.HeadComment, "# Source: ") {
			src = strings.TrimPrefix(strings.SplitN(n.HeadComment, "\n", 2)[0], "# Source: ")
		}
		if len(n.Content) > 0 && strings.HasPrefix(n.Content[0].HeadComment, "# Source: ") {
			src = strings.TrimPrefix(strings.SplitN(n.Content[0].HeadComment, "\n", 2)[0], "# Source: ")
		}
		if m == nil {
			return nil, fmt.Errorf("document %d (%s) is empty", i, src)
		}
		out = append(out, manifest{m, src})
	}
	return out, nil
}

var dns1123 = regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`)

// The metric names the dashboard must use (docs/helm.md lists them; the programs export them).
var metrics = []string{
	"ds2grist_dossiers_emitted_total", "ds2grist_dossiers_written_total",
	"ds2grist_ds_requests_total", "ds2grist_grist_requests_total",
	"ds2grist_grist_permit_wait_seconds", "ds2grist_grist_permits_in_use",
	"ds2grist_grist_429_total", "ds2grist_dead_lettered_total",
	"ds2grist_consumer_lag", "ds2grist_cursor_age_seconds",
	"ds2grist_worker_dossiers_buffered", "ds2grist_worker_partitions_paused",
}

// A secret reference found in config.json: its JSON path and {"env"} or {"file"}.
type secretRef struct {
	path, env, file string
}

// checkConfig checks config.json against docs/configuration.md and returns its secret references.
func checkConfig(text string) (obj, []secretRef) {
	dec := json.NewDecoder(strings.NewReader(text))
	dec.UseNumber()
	var cfg obj
	if !check(dec.Decode(&cfg) == nil, "config.json parses as a JSON object") {
		return nil, nil
	}
	var refs []secretRef
	var problems []string
	bad := func(format string, a ...any) { problems = append(problems, fmt.Sprintf(format, a...)) }
	secret := func(v any, path string, required bool) {
		if v == nil {
			if required {
				bad("%s: missing", path)
			}
			return
		}
		m, ok := v.(map[string]any)
		if !ok {
			bad("%s: is %T, not a {env}/{file} reference (a secret written in the file?)", path, v)
			return
		}
		if len(m) != 1 {
			bad("%s: needs exactly one of env or file, has %v", path, keys(m))
			return
		}
		if e, ok := m["env"].(string); ok && regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`).MatchString(e) {
			refs = append(refs, secretRef{path: path, env: e})
		} else if f, ok := m["file"].(string); ok && strings.HasPrefix(f, "/") {
			refs = append(refs, secretRef{path: path, file: f})
		} else {
			bad("%s: %v is not {\"env\": NAME} or {\"file\": \"/path\"}", path, m)
		}
	}
	intIn := func(v any, path string, lo, hi float64) {
		if v == nil {
			return
		}
		n, ok := num(v)
		if !ok || !isInt(v) || n < lo || n > hi {
			bad("%s: %v is not an integer in %v..%v", path, v, lo, hi)
		}
	}
	if b := onlyKeys(cfg, "kafka", "redis", "ds", "grist", "defaults", "procedures", "producer", "worker", "log_level", "http",
		"registry", "onboarding"); b != nil {
		bad("unknown top-level keys %v", b)
	}
	// registry and onboarding (docs/onboarding.md)
	if reg, ok := cfg["registry"]; ok {
		rm, _ := reg.(map[string]any)
		if b := onlyKeys(rm, "encryption_key", "topic"); b != nil {
			bad("registry: unknown keys %v", b)
		}
		secret(rm["encryption_key"], "registry.encryption_key", true)
	}
	if ob, ok := cfg["onboarding"]; ok {
		om, _ := ob.(map[string]any)
		if b := onlyKeys(om, "listen", "self_service", "static_dir", "grist_servers", "platform_account",
			"per_document_per_minute", "per_address_per_minute", "trust_forwarded_for"); b != nil {
			bad("onboarding: unknown keys %v", b)
		}
		if cfg["registry"] == nil {
			bad("onboarding: needs registry.encryption_key")
		}
		intIn(om["per_document_per_minute"], "onboarding.per_document_per_minute", 1, 100000)
		intIn(om["per_address_per_minute"], "onboarding.per_address_per_minute", 1, 100000)
	}
	// kafka
	k := asMap(cfg, "kafka")
	if b := onlyKeys(k, "properties", "secret_properties", "topic", "dlq_topic", "retry_topic", "consumer_group"); b != nil {
		bad("kafka: unknown keys %v", b)
	}
	props := asMap(k, "properties")
	if s, _ := props["bootstrap.servers"].(string); s == "" {
		bad("kafka.properties[\"bootstrap.servers\"]: missing")
	}
	for _, p := range keys(props) {
		if _, ok := props[p].(string); !ok {
			bad("kafka.properties[%q]: not a string", p)
		}
		if strings.Contains(p, "password") || strings.Contains(p, "secret") {
			bad("kafka.properties[%q]: secret-looking property outside secret_properties", p)
		}
	}
	for _, p := range keys(asMap(k, "secret_properties")) {
		secret(asMap(k, "secret_properties")[p], fmt.Sprintf("kafka.secret_properties[%q]", p), true)
	}
	for _, t := range []string{"topic", "dlq_topic", "retry_topic", "consumer_group"} {
		if v, ok := k[t]; ok {
			if s, _ := v.(string); s == "" {
				bad("kafka.%s: not a non-empty string", t)
			}
		}
	}
	if k["topic"] != nil && k["topic"] == k["dlq_topic"] {
		bad("kafka.dlq_topic equals kafka.topic")
	}
	// redis
	r := asMap(cfg, "redis")
	if b := onlyKeys(r, "url", "namespace", "username", "password"); b != nil {
		bad("redis: unknown keys %v", b)
	}
	if u := str(r, "url"); !(strings.HasPrefix(u, "redis://") || strings.HasPrefix(u, "unix:///")) || strings.Contains(u, "@") {
		bad("redis.url: %q is not redis://host:port[/db] or unix:///path without credentials", u)
	}
	secret(r["password"], "redis.password", false)
	// ds
	d := asMap(cfg, "ds")
	if b := onlyKeys(d, "endpoint", "tokens", "timeout_s"); b != nil {
		bad("ds: unknown keys %v", b)
	}
	intIn(d["timeout_s"], "ds.timeout_s", 1, 600)
	tokens := asMap(d, "tokens")
	if tokens == nil {
		bad("ds.tokens: missing")
	}
	for _, name := range keys(tokens) {
		t := asMap(tokens, name)
		if b := onlyKeys(t, "secret", "requests_per_minute"); b != nil {
			bad("ds.tokens.%s: unknown keys %v", name, b)
		}
		secret(t["secret"], "ds.tokens."+name+".secret", true)
		intIn(t["requests_per_minute"], "ds.tokens."+name+".requests_per_minute", 1, 1000000)
	}
	// grist
	g := asMap(cfg, "grist")
	if b := onlyKeys(g, "servers", "timeout_s"); b != nil {
		bad("grist: unknown keys %v", b)
	}
	servers := asMap(g, "servers")
	if len(servers) == 0 {
		bad("grist.servers: no server")
	}
	for _, name := range keys(servers) {
		s := asMap(servers, name)
		p := "grist.servers." + name
		if b := onlyKeys(s, "url", "api_key", "permits_per_document", "requests_per_second", "documents"); b != nil {
			bad("%s: unknown keys %v", p, b)
		}
		if u := str(s, "url"); !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
			bad("%s.url: %q", p, u)
		}
		secret(s["api_key"], p+".api_key", true)
		intIn(s["permits_per_document"], p+".permits_per_document", 1, 1000)
		if v, ok := s["requests_per_second"]; ok {
			if n, ok := num(v); !ok || n < 0 {
				bad("%s.requests_per_second: %v", p, v)
			}
		}
		for _, doc := range keys(asMap(s, "documents")) {
			dd := asMap(s, "documents", doc)
			if b := onlyKeys(dd, "permits"); b != nil || dd["permits"] == nil {
				bad("%s.documents.%s: wants exactly {permits}", p, doc)
			}
			intIn(dd["permits"], p+".documents."+doc+".permits", 1, 1000)
		}
	}
	// defaults, procedures
	options := func(o obj, p string) {
		if b := onlyKeys(o, "poll_interval_s", "deleted"); b != nil {
			bad("%s: unknown keys %v", p, b)
		}
		intIn(o["poll_interval_s"], p+".poll_interval_s", 1, 86400)
		if v, ok := o["deleted"]; ok && v != "mark" && v != "remove" {
			bad("%s.deleted: %v", p, v)
		}
	}
	options(asMap(cfg, "defaults"), "defaults")
	procs, ok := cfg["procedures"].([]any)
	if !ok {
		bad("procedures: missing or not an array")
	}
	seen := map[string]bool{}
	for i, pv := range procs {
		pr, _ := pv.(map[string]any)
		p := fmt.Sprintf("procedures[%d]", i)
		if b := onlyKeys(pr, "number", "ds_token", "grist_server", "document", "table_prefix", "options"); b != nil {
			bad("%s: unknown keys %v", p, b)
		}
		intIn(pr["number"], p+".number", 1, 1e15)
		if n := fmt.Sprint(pr["number"]); seen[n] {
			bad("%s.number: %s twice", p, n)
		} else {
			seen[n] = true
		}
		if _, ok := tokens[str(pr, "ds_token")]; !ok {
			bad("%s.ds_token: %q is not in ds.tokens", p, str(pr, "ds_token"))
		}
		if _, ok := servers[str(pr, "grist_server")]; !ok {
			bad("%s.grist_server: %q is not in grist.servers", p, str(pr, "grist_server"))
		}
		if str(pr, "document") == "" {
			bad("%s.document: missing", p)
		}
		if tp, ok := pr["table_prefix"]; ok && !regexp.MustCompile(`^[A-Z][A-Za-z0-9_]*$`).MatchString(fmt.Sprint(tp)) {
			bad("%s.table_prefix: %v", p, tp)
		}
		options(asMap(pr, "options"), p+".options")
	}
	// tuning, log level, http
	if b := onlyKeys(asMap(cfg, "producer"), "concurrency", "lease_s", "labels_interval_s", "page_size", "page_size_min", "shutdown_grace_s"); b != nil {
		bad("producer: unknown keys %v", b)
	}
	if b := onlyKeys(asMap(cfg, "worker"), "linger_ms", "batch_bytes", "max_buffered", "max_buffered_total", "max_buffered_bytes", "ds_base_url", "shutdown_grace_s",
		"revoke_deadline_s", "retry_delay_s", "retry_max_delay_s", "status_interval_s", "attachment_max_bytes",
		"attachment_budget_bytes", "attachment_downloads"); b != nil {
		bad("worker: unknown keys %v", b)
	}
	if v, ok := cfg["log_level"]; ok && v != "debug" && v != "info" && v != "warn" && v != "error" {
		bad("log_level: %v", v)
	}
	if b := onlyKeys(asMap(cfg, "http"), "port"); b != nil {
		bad("http: unknown keys %v", b)
	}
	intIn(get(cfg, "http", "port"), "http.port", 1, 65535)
	if get(cfg, "http", "port") == nil {
		bad("http.port: missing (the probes need it)")
	}
	check(len(problems) == 0, "config.json has the structure of docs/configuration.md%s", strings.Join(append([]string{""}, problems...), "\n    "))
	return cfg, refs
}

type podInfo struct {
	dep       manifest
	component string
	labels    obj
	spec      obj
	container obj
}

func shutdownGrace(cfg obj, component string) float64 {
	if n, ok := num(get(cfg, component, "shutdown_grace_s")); ok {
		return n
	}
	return 25
}

func cmdManifests(args []string) {
	fs := flag.NewFlagSet("manifests", flag.ExitOnError)
	file := fs.String("manifests", "", "the rendered manifests")
	namespace := fs.String("namespace", "default", "the release namespace")
	expect := fs.String("expect", "", "kinds that must be present (comma-separated)")
	absent := fs.String("absent", "", "kinds that must be absent (comma-separated)")
	image := fs.String("image", "", "the expected image of the containers")
	uid := fs.Int("uid", 10001, "the image's user id (from the Dockerfile)")
	producerReplicas := fs.Int("producer-replicas", -1, "expected producer replicas")
	workerMin := fs.Int("worker-min", -1, "expected minimum worker replicas (the Deployment's, the HPA's or KEDA's)")
	devSecret := fs.Bool("dev-secret", false, "secrets.create is on: a Secret holds the values")
	loader := fs.String("config-loader", "", "a program that loads a config.json with the real loader (chart_config_load)")
	_ = fs.Parse(args)

	docs, err := readManifests(*file)
	if !check(err == nil, "%s: every document is valid YAML without duplicate keys (%v)", *file, err) {
		finish()
	}
	check(len(docs) > 0, "the chart renders documents (%d)", len(docs))

	// Every document: apiVersion, kind, metadata.name; unique; labelled.
	byKind := map[string][]manifest{}
	ids := map[string]bool{}
	for _, d := range docs {
		ok := str(d.obj, "apiVersion") != "" && d.kind() != "" && dns1123.MatchString(d.name()) && len(d.name()) <= 253
		check(ok, "%s (%s): apiVersion, kind and a valid metadata.name", d.id(), d.source)
		check(!ids[d.id()], "%s: unique", d.id())
		ids[d.id()] = true
		byKind[d.kind()] = append(byKind[d.kind()], d)
		l := asMap(d.obj, "metadata", "labels")
		check(l["app.kubernetes.io/name"] != nil && l["app.kubernetes.io/instance"] != nil && l["app.kubernetes.io/managed-by"] == "Helm",
			"%s: has the chart's standard labels", d.id())
		if l["grafana_dashboard"] == nil { // the dashboard may go to Grafana's namespace
			check(str(d.obj, "metadata", "namespace") == *namespace, "%s: in namespace %s", d.id(), *namespace)
		}
		if d.kind() != "Secret" {
			check(get(d.obj, "stringData") == nil && (d.kind() != "ConfigMap" || get(d.obj, "binaryData") == nil),
				"%s: holds no secret data", d.id())
		}
	}

	// Kinds.
	for _, k := range []string{"ConfigMap", "Deployment", "PodDisruptionBudget"} {
		check(len(byKind[k]) > 0, "kind %s is present", k)
	}
	for _, k := range strings.Split(*expect, ",") {
		if k != "" {
			check(len(byKind[k]) > 0, "kind %s is present", k)
		}
	}
	for _, k := range strings.Split(*absent, ",") {
		if k != "" {
			check(len(byKind[k]) == 0, "kind %s is absent", k)
		}
	}
	check(len(byKind["HorizontalPodAutoscaler"])+len(byKind["ScaledObject"]) <= 1,
		"an HPA or a KEDA ScaledObject, never both (%d HPA, %d ScaledObject)",
		len(byKind["HorizontalPodAutoscaler"]), len(byKind["ScaledObject"]))
	check(len(byKind["Deployment"]) == 2, "two Deployments (producer, worker)")
	check(len(byKind["PodDisruptionBudget"]) == 2, "a PodDisruptionBudget for each Deployment")

	// Secrets.
	secrets := byKind["Secret"]
	if !*devSecret {
		check(len(secrets) == 0, "no Secret is rendered by default (credentials come from existing Secrets)")
	} else {
		check(len(secrets) == 1, "secrets.create renders one Secret")
	}

	// The configuration.
	var cfg obj
	var refs []secretRef
	var cmName string
	for _, cm := range byKind["ConfigMap"] {
		if text, ok := get(cm.obj, "data", "config.json").(string); ok {
			check(cfg == nil, "one ConfigMap holds config.json")
			cmName = cm.name()
			cfg, refs = checkConfig(text)
			if *loader != "" && cfg != nil {
				runLoader(*loader, text, refs)
			}
		}
	}
	if !check(cfg != nil, "a ConfigMap holds config.json") {
		finish()
	}
	port, _ := num(get(cfg, "http", "port"))

	// Deployments and their pods.
	var pods []podInfo
	for _, dep := range byKind["Deployment"] {
		spec := asMap(dep.obj, "spec", "template", "spec")
		cs := list(spec, "containers")
		if !check(len(cs) == 1, "%s: one container", dep.id()) {
			continue
		}
		c, _ := cs[0].(map[string]any)
		comp := str(dep.obj, "metadata", "labels", "app.kubernetes.io/component")
		check(comp == "producer" || comp == "worker", "%s: component label producer or worker (%q)", dep.id(), comp)
		pods = append(pods, podInfo{dep, comp, asMap(dep.obj, "spec", "template", "metadata", "labels"), spec, c})
	}
	comps := map[string]podInfo{}
	for _, p := range pods {
		comps[p.component] = p
	}
	check(comps["producer"].dep.obj != nil && comps["worker"].dep.obj != nil, "a producer and a worker Deployment")

	for _, p := range pods {
		id := p.dep.id()
		c, spec := p.container, p.spec
		check(subset(asMap(p.dep.obj, "spec", "selector", "matchLabels"), p.labels), "%s: selector matches its pod labels", id)
		cmd := fmt.Sprint(list(c, "command"))
		check(cmd == fmt.Sprintf("[ds2grist-%s --config /etc/ds2grist/config.json]", p.component),
			"%s: command is ds2grist-%s --config /etc/ds2grist/config.json (%s)", id, p.component, cmd)
		if *image != "" {
			check(str(c, "image") == *image, "%s: image %s (%s)", id, *image, str(c, "image"))
		}
		// Volumes and mounts.
		volumes := map[string]obj{}
		for _, v := range list(spec, "volumes") {
			vm, _ := v.(map[string]any)
			volumes[str(vm, "name")] = vm
		}
		mounts := map[string]obj{}
		for _, m := range list(c, "volumeMounts") {
			mm, _ := m.(map[string]any)
			mounts[str(mm, "mountPath")] = mm
			check(volumes[str(mm, "name")] != nil, "%s: mount %s has a volume", id, str(mm, "mountPath"))
		}
		cfgMount := mounts["/etc/ds2grist"]
		cfgVol := volumes[str(cfgMount, "name")]
		check(cfgMount != nil && str(cfgVol, "configMap", "name") == cmName && get(cfgMount, "readOnly") == true,
			"%s: ConfigMap %s mounted read-only at /etc/ds2grist", id, cmName)
		tmp := mounts["/tmp"]
		check(tmp != nil && get(volumes[str(tmp, "name")], "emptyDir") != nil, "%s: /tmp is an emptyDir", id)

		// Environment: secrets only through secretKeyRef.
		env := map[string]obj{}
		for _, e := range list(c, "env") {
			em, _ := e.(map[string]any)
			name := str(em, "name")
			env[name] = em
			if vf := asMap(em, "valueFrom"); vf != nil {
				check(len(vf) == 1 && (vf["secretKeyRef"] != nil || vf["configMapKeyRef"] != nil || vf["fieldRef"] != nil || vf["resourceFieldRef"] != nil),
					"%s: env %s has one valueFrom source", id, name)
			}
			if regexp.MustCompile(`(?i)(token|passw|secret|api_?key|credential)`).MatchString(name) {
				check(get(em, "secretKeyRef") == nil && get(em, "valueFrom", "secretKeyRef") != nil && get(em, "value") == nil,
					"%s: secret-looking env %s comes from a secretKeyRef, not a value", id, name)
			}
		}
		referenced := map[string]bool{}
		secretMountCount := 0
		for _, r := range refs {
			if r.env != "" {
				referenced[r.env] = true
				e := env[r.env]
				if strings.HasPrefix(r.env, "D2G_SECRET_") {
					ref := asMap(e, "valueFrom", "secretKeyRef")
					check(ref != nil && str(ref, "name") != "" && str(ref, "key") != "" && e["value"] == nil,
						"%s: %s (%s) is set from a secretKeyRef", id, r.env, r.path)
				} else {
					check(e != nil || len(list(c, "envFrom")) > 0, "%s: %s (%s, passed through) is set by the pod", id, r.env, r.path)
				}
			} else {
				// {"file": PATH}: a mount holds it; a Secret (or projected Secret) volume maps it.
				var best string
				for mp := range mounts {
					if strings.HasPrefix(r.file, strings.TrimSuffix(mp, "/")+"/") && len(mp) > len(best) {
						best = mp
					}
				}
				if !check(best != "", "%s: %s (%s) is under a volume mount", id, r.file, r.path) {
					continue
				}
				vol := volumes[str(mounts[best], "name")]
				rel := strings.TrimPrefix(r.file, strings.TrimSuffix(best, "/")+"/")
				var items []any
				if s := asMap(vol, "secret"); s != nil {
					items = list(s, "items")
					if items == nil { // the whole Secret: every key is a file
						check(str(s, "secretName") != "", "%s: %s comes from Secret %s", id, r.file, str(s, "secretName"))
						continue
					}
				} else if pj := asMap(vol, "projected"); pj != nil {
					for _, src := range list(pj, "sources") {
						if s := asMap(src, "secret"); s != nil && str(s, "name") != "" {
							items = append(items, list(s, "items")...)
						}
					}
				} else {
					// Passed through ({file: ...}): the user's own volume provides it.
					check(!strings.HasPrefix(rel, "ds/") && !strings.HasPrefix(rel, "grist/"),
						"%s: %s (%s, passed through) is on the user's volume %s", id, r.file, r.path, str(vol, "name"))
					continue
				}
				secretMountCount++
				check(get(mounts[best], "readOnly") == true, "%s: secret mount %s is read-only", id, best)
				found := false
				for _, it := range items {
					if str(it, "path") == rel && str(it, "key") != "" {
						found = true
					}
				}
				check(found, "%s: %s (%s) is an item of a Secret volume", id, r.file, r.path)
			}
		}
		for name := range env {
			if strings.HasPrefix(name, "D2G_SECRET_") {
				check(referenced[name], "%s: env %s is referenced by config.json", id, name)
			}
		}

		// Probes on the http port of the configuration.
		ports := map[string]float64{}
		hasPort := false
		for _, pt := range list(c, "ports") {
			n, _ := num(get(pt, "containerPort"))
			if name := str(pt, "name"); name != "" {
				ports[name] = n
			}
			if n == port {
				hasPort = true
			}
		}
		check(hasPort, "%s: a container port is config.json's http.port (%v)", id, port)
		for _, pr := range []struct{ probe, path string }{{"livenessProbe", "/healthz"}, {"readinessProbe", "/readyz"}, {"startupProbe", "/healthz"}} {
			hg := asMap(c, pr.probe, "httpGet")
			pp := get(hg, "port")
			var resolved float64
			if s, ok := pp.(string); ok {
				resolved = ports[s]
			} else {
				resolved, _ = num(pp)
			}
			check(hg != nil && str(hg, "path") == pr.path && resolved == port,
				"%s: %s is GET %s on port %v (http.port)", id, pr.probe, pr.path, port)
		}

		// Security.
		psc, csc := asMap(spec, "securityContext"), asMap(c, "securityContext")
		eff := func(k string) any {
			if v, ok := csc[k]; ok {
				return v
			}
			return psc[k]
		}
		ru, _ := num(eff("runAsUser"))
		check(eff("runAsNonRoot") == true && ru == float64(*uid) && ru != 0,
			"%s: runs as non-root uid %d (the Dockerfile's)", id, *uid)
		check(get(csc, "readOnlyRootFilesystem") == true, "%s: readOnlyRootFilesystem", id)
		check(get(csc, "allowPrivilegeEscalation") == false, "%s: allowPrivilegeEscalation false", id)
		check(get(csc, "privileged") != true, "%s: not privileged", id)
		drop := fmt.Sprint(list(csc, "capabilities", "drop"))
		check(strings.Contains(drop, "ALL") && list(csc, "capabilities", "add") == nil, "%s: capabilities drop ALL, add none", id)
		check(str(eff("seccompProfile"), "type") == "RuntimeDefault", "%s: seccompProfile RuntimeDefault", id)
		check(get(spec, "automountServiceAccountToken") == false, "%s: no service account token", id)
		if sa := str(spec, "serviceAccountName"); sa != "" && sa != "default" {
			found := false
			for _, s := range byKind["ServiceAccount"] {
				found = found || s.name() == sa
			}
			check(found, "%s: ServiceAccount %s is rendered", id, sa)
		}
		// Shutdown, resources.
		tg, _ := num(get(spec, "terminationGracePeriodSeconds"))
		check(tg > shutdownGrace(cfg, p.component), "%s: terminationGracePeriodSeconds %v exceeds config %s.shutdown_grace_s (%v)",
			id, tg, p.component, shutdownGrace(cfg, p.component))
		res := asMap(c, "resources")
		check(get(res, "requests", "cpu") != nil && get(res, "requests", "memory") != nil && get(res, "limits", "memory") != nil,
			"%s: resources: cpu and memory requests, memory limit", id)
	}
	if p, ok := comps["producer"]; ok && *producerReplicas >= 0 {
		n, _ := num(get(p.dep.obj, "spec", "replicas"))
		check(n == float64(*producerReplicas), "producer replicas %d (%v)", *producerReplicas, n)
	}

	// Autoscaling of the workers.
	w := comps["worker"]
	minReplicas := float64(-1)
	for _, h := range byKind["HorizontalPodAutoscaler"] {
		check(str(h.obj, "apiVersion") == "autoscaling/v2", "%s: autoscaling/v2", h.id())
		check(str(h.obj, "spec", "scaleTargetRef", "kind") == "Deployment" && str(h.obj, "spec", "scaleTargetRef", "name") == w.dep.name(),
			"%s: scales the worker Deployment", h.id())
		ms := list(h.obj, "spec", "metrics")
		check(len(ms) > 0 && str(ms[0], "resource", "name") == "cpu", "%s: on CPU", h.id())
		minReplicas, _ = num(get(h.obj, "spec", "minReplicas"))
		max, _ := num(get(h.obj, "spec", "maxReplicas"))
		check(minReplicas <= max, "%s: minReplicas <= maxReplicas", h.id())
	}
	for _, s := range byKind["ScaledObject"] {
		check(str(s.obj, "apiVersion") == "keda.sh/v1alpha1", "%s: keda.sh/v1alpha1", s.id())
		check(str(s.obj, "spec", "scaleTargetRef", "name") == w.dep.name(), "%s: scales the worker Deployment", s.id())
		trig := list(s.obj, "spec", "triggers")
		if !check(len(trig) == 1 && str(trig[0], "type") == "kafka", "%s: one kafka trigger", s.id()) {
			continue
		}
		md := asMap(trig[0], "metadata")
		allStrings := true
		for _, v := range md {
			_, ok := v.(string)
			allStrings = allStrings && ok
		}
		check(allStrings, "%s: trigger metadata values are strings", s.id())
		group := str(cfg, "kafka", "consumer_group")
		if group == "" {
			group = "ds2grist-worker"
		}
		topic := str(cfg, "kafka", "topic")
		if topic == "" {
			topic = "ds2grist.dossiers"
		}
		check(str(md, "bootstrapServers") == str(cfg, "kafka", "properties", "bootstrap.servers"), "%s: bootstrapServers is config's bootstrap.servers", s.id())
		check(str(md, "consumerGroup") == group, "%s: consumerGroup is config's consumer_group (%s)", s.id(), group)
		check(str(md, "topic") == topic, "%s: topic is config's topic (%s)", s.id(), topic)
		check(regexp.MustCompile(`^[0-9]+$`).MatchString(str(md, "lagThreshold")), "%s: lagThreshold is a count", s.id())
		minReplicas, _ = num(get(s.obj, "spec", "minReplicaCount"))
	}
	if *workerMin >= 0 && w.dep.obj != nil {
		if minReplicas < 0 {
			minReplicas, _ = num(get(w.dep.obj, "spec", "replicas"))
		} else {
			check(get(w.dep.obj, "spec", "replicas") == nil, "worker Deployment leaves replicas to its autoscaler")
		}
		check(minReplicas == float64(*workerMin), "worker replicas at least %d (%v)", *workerMin, minReplicas)
	}

	// Disruption budgets.
	for _, pdb := range byKind["PodDisruptionBudget"] {
		sel := asMap(pdb.obj, "spec", "selector", "matchLabels")
		n := 0
		for _, p := range pods {
			if subset(sel, p.labels) {
				n++
			}
		}
		check(n == 1, "%s: selects exactly one Deployment's pods", pdb.id())
		check((get(pdb.obj, "spec", "minAvailable") == nil) != (get(pdb.obj, "spec", "maxUnavailable") == nil),
			"%s: minAvailable xor maxUnavailable", pdb.id())
	}

	// Services and the ServiceMonitor.
	for _, svc := range byKind["Service"] {
		sel := asMap(svc.obj, "spec", "selector")
		var target *podInfo
		for i := range pods {
			if subset(sel, pods[i].labels) {
				if target != nil {
					target = nil
					break
				}
				target = &pods[i]
			}
		}
		if !check(target != nil, "%s: selects exactly one Deployment's pods", svc.id()) {
			continue
		}
		ok := false
		if str(svc.obj, "metadata", "labels", "app.kubernetes.io/component") == "onboarding" {
			// The onboarding Service: the producers' onboarding port, which the container declares.
			declared := false
			for _, cp := range list(target.container, "ports") {
				declared = declared || str(cp, "name") == "onboarding"
			}
			for _, pt := range list(svc.obj, "spec", "ports") {
				ok = ok || (str(pt, "name") == "onboarding" && get(pt, "targetPort") == "onboarding" && declared)
			}
			check(target.component == "producer" && ok,
				"%s: port onboarding targets the producer containers' onboarding port", svc.id())
			continue
		}
		for _, pt := range list(svc.obj, "spec", "ports") {
			tp := get(pt, "targetPort")
			n, isNum := num(tp)
			ok = ok || (str(pt, "name") == "http" && (tp == "http" || (isNum && n == port)))
		}
		check(ok, "%s: port http targets the containers' http port", svc.id())
	}
	for _, sm := range byKind["ServiceMonitor"] {
		check(str(sm.obj, "apiVersion") == "monitoring.coreos.com/v1", "%s: monitoring.coreos.com/v1", sm.id())
		sel := asMap(sm.obj, "spec", "selector", "matchLabels")
		n := 0
		for _, svc := range byKind["Service"] {
			labels := asMap(svc.obj, "metadata", "labels")
			if subset(sel, labels) && matchesExpressions(list(sm.obj, "spec", "selector", "matchExpressions"), labels) {
				n++
			}
		}
		check(n == 2, "%s: selects the producer and worker Services (%d)", sm.id(), n)
		eps := list(sm.obj, "spec", "endpoints")
		check(len(eps) == 1 && str(eps[0], "port") == "http" && str(eps[0], "path") == "/metrics", "%s: scrapes /metrics on port http", sm.id())
		check(fmt.Sprint(list(sm.obj, "spec", "namespaceSelector", "matchNames")) == "["+*namespace+"]", "%s: in the release namespace", sm.id())
	}

	// The Grafana dashboard.
	for _, cm := range byKind["ConfigMap"] {
		if asMap(cm.obj, "metadata", "labels")["grafana_dashboard"] == nil {
			continue
		}
		check(str(cm.obj, "metadata", "labels", "grafana_dashboard") == "1", "%s: label grafana_dashboard: \"1\"", cm.id())
		for _, k := range keys(asMap(cm.obj, "data")) {
			var dash obj
			text := str(cm.obj, "data", k)
			if !check(json.Unmarshal([]byte(text), &dash) == nil, "%s: %s is JSON", cm.id(), k) {
				continue
			}
			var exprs []string
			var walk func(ps []any)
			ids := map[string]bool{}
			dupIDs := false
			walk = func(ps []any) {
				for _, p := range ps {
					id := fmt.Sprint(get(p, "id"))
					dupIDs = dupIDs || ids[id]
					ids[id] = true
					for _, t := range list(p, "targets") {
						exprs = append(exprs, str(t, "expr"))
					}
					walk(list(p, "panels"))
				}
			}
			walk(list(dash, "panels"))
			check(!dupIDs && len(exprs) > 0, "%s: %s has panels with unique ids and queries", cm.id(), k)
			all := strings.Join(exprs, "\n")
			for _, m := range metrics {
				check(strings.Contains(all, m), "%s: a panel queries %s", cm.id(), m)
			}
		}
	}

	// The development Secret covers the keys the pods read from it.
	if *devSecret && len(secrets) == 1 {
		s := secrets[0]
		data := asMap(s.obj, "stringData")
		for _, p := range pods {
			for _, e := range list(p.container, "env") {
				ref := asMap(e, "valueFrom", "secretKeyRef")
				if ref != nil && str(ref, "name") == s.name() {
					check(data[str(ref, "key")] != nil, "%s: has key %s that %s reads", s.id(), str(ref, "key"), p.dep.id())
				}
			}
		}
	}
	finish()
}

// runLoader loads config.json with the real loader, giving each secret a dummy value: env vars
// in the loader's environment, files under a temporary root (paths rewritten).
// matchesExpressions: a label selector's matchExpressions (In, NotIn, Exists, DoesNotExist) against labels.
func matchesExpressions(exprs []any, labels obj) bool {
	for _, e := range exprs {
		key, op := str(e, "key"), str(e, "operator")
		v, has := labels[key]
		in := false
		for _, want := range list(e, "values") {
			in = in || (has && fmt.Sprint(v) == fmt.Sprint(want))
		}
		switch op {
		case "In":
			if !in {
				return false
			}
		case "NotIn":
			if in {
				return false
			}
		case "Exists":
			if !has {
				return false
			}
		case "DoesNotExist":
			if has {
				return false
			}
		default:
			return false
		}
	}
	return true
}

func runLoader(loader, text string, refs []secretRef) {
	dir, err := os.MkdirTemp("", "d2g-chart-")
	if err != nil {
		fail("temporary directory: %v", err)
		return
	}
	defer os.RemoveAll(dir)
	var cfg any
	_ = json.Unmarshal([]byte(text), &cfg)
	env := os.Environ()
	for _, r := range refs {
		value := "dummy-" + strings.ToLower(r.env+filepath.Base(r.file))
		if r.path == "registry.encryption_key" { // the loader checks its form: 64 hex digits
			value = strings.Repeat("0f", 32)
		}
		if r.env != "" {
			env = append(env, r.env+"="+value)
			continue
		}
		local := filepath.Join(dir, r.file)
		_ = os.MkdirAll(filepath.Dir(local), 0o755)
		_ = os.WriteFile(local, []byte(value+"\n"), 0o600)
	}
	var rewrite func(v any) any
	rewrite = func(v any) any {
		switch x := v.(type) {
		case map[string]any:
			if f, ok := x["file"].(string); ok && len(x) == 1 {
				return map[string]any{"file": filepath.Join(dir, f)}
			}
			for k, e := range x {
				x[k] = rewrite(e)
			}
		case []any:
			for i, e := range x {
				x[i] = rewrite(e)
			}
		}
		return v
	}
	data, _ := json.Marshal(rewrite(cfg))
	path := filepath.Join(dir, "config.json")
	_ = os.WriteFile(path, data, 0o600)
	cmd := exec.Command(loader, path)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	check(err == nil, "the real configuration loader accepts config.json (%s)", strings.TrimSpace(string(out)))
}

// ---- static checks: schema, README, Dockerfile ------------------------------------------

func yamlToJSONValue(data []byte) (any, error) {
	var raw any
	if err := yaml.Unmarshal(data, &raw); err != nil {
		return nil, err
	}
	j, err := json.Marshal(raw)
	if err != nil {
		return nil, err
	}
	var v any
	err = json.Unmarshal(j, &v)
	return v, err
}

func validate(schema []byte, v any) []string {
	res, err := gojsonschema.Validate(gojsonschema.NewBytesLoader(schema), gojsonschema.NewGoLoader(v))
	if err != nil {
		return []string{err.Error()}
	}
	var errs []string
	for _, e := range res.Errors() {
		errs = append(errs, e.String())
	}
	return errs
}

func deepCopy(v any) any {
	j, _ := json.Marshal(v)
	var out any
	_ = json.Unmarshal(j, &out)
	return out
}

func set(v any, value any, path ...string) {
	m := v.(map[string]any)
	for _, k := range path[:len(path)-1] {
		m = m[k].(map[string]any)
	}
	m[path[len(path)-1]] = value
}

// A row of the README's values table.
type row struct{ path, def, desc string }

// valueRows walks values.yaml along the schema: an object the schema closes
// (properties + additionalProperties: false) is walked into, anything else is one row.
func valueRows(node *yaml.Node, schema obj, prefix string, rows *[]row, problems *[]string) {
	for i := 0; i+1 < len(node.Content); i += 2 {
		k, v := node.Content[i], node.Content[i+1]
		path := k.Value
		if prefix != "" {
			path = prefix + "." + k.Value
		}
		sub := asMap(schema, "properties", k.Value)
		if sub == nil {
			*problems = append(*problems, path+": not declared in values.schema.json")
			continue
		}
		if v.Kind == yaml.MappingNode && asMap(sub, "properties") != nil && get(sub, "additionalProperties") == false {
			valueRows(v, sub, path, rows, problems)
			continue
		}
		// The description: the last "# -- " paragraph of the key's head comment.
		c := k.HeadComment
		idx := strings.LastIndex(c, "# -- ")
		if idx < 0 {
			*problems = append(*problems, path+": no \"# -- \" description comment in values.yaml")
			continue
		}
		var words []string
		for _, line := range strings.Split(c[idx:], "\n") {
			line = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "#"))
			words = append(words, strings.TrimPrefix(line, "-- "))
		}
		var val any
		_ = v.Decode(&val)
		def, _ := json.Marshal(deepCopy(val))
		*rows = append(*rows, row{path, string(def), strings.Join(words, " ")})
	}
}

func readmeTable(rows []row) string {
	var b strings.Builder
	b.WriteString("| value | default | meaning |\n|---|---|---|\n")
	esc := strings.NewReplacer("|", "\\|", "<", "&lt;", ">", "&gt;")
	for _, r := range rows {
		fmt.Fprintf(&b, "| `%s` | `%s` | %s |\n", r.path, esc.Replace(r.def), esc.Replace(r.desc))
	}
	return b.String()
}

func cmdStatic(args []string) {
	fs := flag.NewFlagSet("static", flag.ExitOnError)
	chart := fs.String("chart", "", "the chart directory")
	dockerfile := fs.String("dockerfile", "", "the Dockerfile")
	writeReadme := fs.Bool("write-readme", false, "rewrite the README's values table instead of checking it")
	_ = fs.Parse(args)

	schema, err := os.ReadFile(filepath.Join(*chart, "values.schema.json"))
	check(err == nil, "values.schema.json is readable")
	var sch obj
	check(json.Unmarshal(schema, &sch) == nil && str(sch, "$schema") == "http://json-schema.org/draft-07/schema#",
		"values.schema.json is a JSON Schema draft-07")
	valuesText, _ := os.ReadFile(filepath.Join(*chart, "values.yaml"))
	values, err := yamlToJSONValue(valuesText)
	if !check(err == nil, "values.yaml parses (%v)", err) {
		finish()
	}
	errs := validate(schema, values)
	check(len(errs) == 0, "values.yaml validates against values.schema.json %v", errs)

	// The schema refuses what it should.
	bad := []struct {
		why   string
		path  []string
		value any
	}{
		{"an unknown log_level", []string{"config", "log_level"}, "verbose"},
		{"a DS token written as a string", []string{"config", "ds", "tokens"}, map[string]any{"t": map[string]any{"secret": "s3cr3t"}}},
		{"an API key inlined", []string{"config", "grist", "servers", "main", "api_key"}, "s3cr3t"},
		{"a password in kafka.properties", []string{"config", "kafka", "properties", "sasl.password"}, "s3cr3t"},
		{"credentials in redis.url", []string{"config", "redis", "url"}, "redis://user:pw@redis:6379/0"},
		{"an unknown top-level value", []string{"replicaCount"}, 3},
		{"a typo in a config key", []string{"config", "kafka", "topics"}, "x"},
		{"secrets.mode other than env/file", []string{"secrets", "mode"}, "vault"},
		{"root", []string{"securityContext", "runAsNonRoot"}, false},
		{"a procedure without document", []string{"config", "procedures"}, []any{map[string]any{"number": 1, "ds_token": "a", "grist_server": "main"}}},
		{"http.port 0", []string{"config", "http", "port"}, 0},
		{"an unknown deleted mode", []string{"config", "defaults", "deleted"}, "purge"},
	}
	for _, b := range bad {
		v := deepCopy(values)
		set(v, b.value, b.path...)
		check(len(validate(schema, v)) > 0, "values.schema.json refuses %s", b.why)
	}

	// README: every value, its default and meaning, in sync with values.yaml.
	var root yaml.Node
	_ = yaml.Unmarshal(valuesText, &root)
	var rows []row
	var problems []string
	if len(root.Content) == 1 {
		valueRows(root.Content[0], sch, "", &rows, &problems)
	}
	check(len(problems) == 0, "every value is declared in the schema and described in values.yaml%s",
		strings.Join(append([]string{""}, problems...), "\n    "))
	readmePath := filepath.Join(*chart, "README.md")
	readme, _ := os.ReadFile(readmePath)
	const start, end = "<!-- values:start -->\n", "<!-- values:end -->"
	i, j := strings.Index(string(readme), start), strings.Index(string(readme), end)
	if check(i >= 0 && j > i, "README.md has the values table markers") {
		table := readmeTable(rows)
		if *writeReadme {
			out := string(readme[:i+len(start)]) + table + string(readme[j:])
			check(os.WriteFile(readmePath, []byte(out), 0o644) == nil, "README.md values table written (%d values)", len(rows))
		} else {
			check(string(readme[i+len(start):j]) == table,
				"README.md lists every value (%d) with its default and meaning, as values.yaml has them (else: tests/chart/run.sh --write-readme)", len(rows))
		}
	}

	// The Dockerfile.
	df, err := os.ReadFile(*dockerfile)
	if !check(err == nil, "%s is readable", *dockerfile) {
		finish()
	}
	text := strings.ReplaceAll(string(df), "\\\n", " ")
	var stages [][]string
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasPrefix(strings.ToUpper(line), "FROM ") {
			stages = append(stages, nil)
		}
		if len(stages) > 0 {
			stages[len(stages)-1] = append(stages[len(stages)-1], line)
		}
	}
	if !check(len(stages) == 2, "Dockerfile: two stages (build, runtime)") {
		finish()
	}
	build, runtime := strings.Join(stages[0], "\n"), strings.Join(stages[1], "\n")
	check(strings.HasPrefix(stages[0][0], "FROM debian:bookworm-slim AS build") && stages[1][0] == "FROM debian:bookworm-slim",
		"Dockerfile: both stages on debian:bookworm-slim")
	pkgs := func(stage string) []string {
		m := regexp.MustCompile(`apt-get install -y --no-install-recommends ([^&]+)`).FindStringSubmatch(stage)
		if m == nil {
			return nil
		}
		return strings.Fields(m[1])
	}
	buildPkgs, runtimePkgs := pkgs(build), pkgs(runtime)
	want := []string{"build-essential", "cmake", "pkg-config", "librdkafka-dev", "libhiredis-dev", "libjansson-dev", "libcurl4-openssl-dev", "libmicrohttpd-dev", "libsodium-dev"}
	check(reflect.DeepEqual(buildPkgs, want), "Dockerfile: the build stage installs %v (%v)", want, buildPkgs)
	check(strings.Contains(build, "-DCMAKE_BUILD_TYPE=Release") && strings.Contains(build, "-DD2G_BUILD_TESTS=OFF") &&
		strings.Contains(build, "cmake --build") && strings.Contains(build, "cmake --install"),
		"Dockerfile: Release build without tests, installed with cmake --install")
	for _, bin := range []string{"ds2grist-producer", "ds2grist-worker", "ds2grist"} {
		check(strings.Contains(runtime, "/usr/local/bin/"+bin), "Dockerfile: the image has %s on the PATH", bin)
	}
	check(!regexp.MustCompile(`(?m)^(ENTRYPOINT|CMD)\b`).MatchString(runtime), "Dockerfile: no ENTRYPOINT (the chart sets the command)")
	runtimeWant := []string{"librdkafka1", "libhiredis0.14", "libjansson4", "libcurl4", "libmicrohttpd12", "libsodium23", "ca-certificates"}
	check(reflect.DeepEqual(runtimePkgs, runtimeWant), "Dockerfile: the runtime stage installs only %v (%v)", runtimeWant, runtimePkgs)
	uidM := regexp.MustCompile(`useradd [^\n]*--uid ([0-9]+)`).FindStringSubmatch(runtime)
	gidM := regexp.MustCompile(`groupadd [^\n]*--gid ([0-9]+)`).FindStringSubmatch(runtime)
	userM := regexp.MustCompile(`(?m)^USER ([0-9]+)(?::([0-9]+))?$`).FindStringSubmatch(runtime)
	if check(uidM != nil && gidM != nil && userM != nil && userM[1] == uidM[1] && (userM[2] == "" || userM[2] == gidM[1]) && uidM[1] != "0",
		"Dockerfile: a fixed non-root user, numeric USER") {
		for _, p := range [][]string{{"podSecurityContext", "runAsUser"}, {"securityContext", "runAsUser"}} {
			n, _ := num(get(values, p...))
			check(fmt.Sprint(n) == uidM[1], "Dockerfile uid %s is the chart's %s (%v)", uidM[1], strings.Join(p, "."), n)
		}
		for _, p := range [][]string{{"podSecurityContext", "runAsGroup"}, {"podSecurityContext", "fsGroup"}, {"securityContext", "runAsGroup"}} {
			n, _ := num(get(values, p...))
			check(fmt.Sprint(n) == gidM[1], "Dockerfile gid %s is the chart's %s (%v)", gidM[1], strings.Join(p, "."), n)
		}
		fmt.Printf("# uid %s\n", uidM[1])
	}

	// The packages exist in Debian bookworm (when this machine is bookworm and has apt lists).
	osr, _ := os.ReadFile("/etc/os-release")
	lists, _ := filepath.Glob("/var/lib/apt/lists/*_Packages*")
	if _, err := exec.LookPath("apt-cache"); err != nil || !strings.Contains(string(osr), "VERSION_CODENAME=bookworm") || len(lists) == 0 {
		fmt.Println("# skipped: apt-cache checks of the Dockerfile's packages (not a Debian bookworm machine with apt lists; run apt-get update)")
	} else {
		for _, p := range append(append([]string{}, buildPkgs...), runtimePkgs...) {
			out, err := exec.Command("apt-cache", "show", "--no-all-versions", p).Output()
			check(err == nil && bytes.Contains(out, []byte("Package: "+p)), "Debian bookworm has package %s", p)
		}
		// The runtime libraries are the ones the -dev packages link against.
		deps := map[string]bool{}
		for _, p := range buildPkgs {
			if !strings.HasSuffix(p, "-dev") {
				continue
			}
			out, _ := exec.Command("apt-cache", "depends", p).Output()
			for _, m := range regexp.MustCompile(`(?m)^\s+Depends: (\S+)`).FindAllStringSubmatch(string(out), -1) {
				deps[m[1]] = true
			}
		}
		for _, p := range runtimePkgs {
			if p != "ca-certificates" {
				check(deps[p], "runtime package %s is the library a -dev package of the build stage depends on", p)
			}
		}
	}
	finish()
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: check manifests|static [flags]")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "manifests":
		cmdManifests(os.Args[2:])
	case "static":
		cmdStatic(os.Args[2:])
	default:
		fmt.Fprintln(os.Stderr, "usage: check manifests|static [flags]")
		os.Exit(2)
	}
}
