// render: renders a Helm chart the way `helm template` does, without Helm.
//
// No Helm binary can be installed on the project's machines (Debian does not package it and
// nothing outside the Debian and npm registries can be fetched), so this program reproduces
// the parts of Helm 3's engine that a chart depends on, from Debian's Go packages:
//
//   - values: the chart's values.yaml, deep-merged with each -f file in order (a null in an
//     override deletes the key), read the way Helm reads them (YAML -> JSON, so every number
//     is a float64, as in Helm);
//   - values.schema.json: the merged values are validated with xeipuuv/gojsonschema, the
//     validator Helm 3 uses;
//   - templates: Go's text/template with Sprig (minus env/expandenv, as in Helm) and Helm's
//     own functions (include, tpl, required, toYaml, fromYaml, toJson, fromJson, lookup, ...),
//     missingkey=zero and "<no value>" removed, templates named "<chart>/templates/<file>",
//     files starting with "_" rendered only through include;
//   - built-in objects: .Values, .Release, .Chart (Chart.yaml's fields), .Capabilities,
//     .Files (the chart's other files), .Template;
//   - output: every manifest as "---\n# Source: <template>\n<document>", as helm template
//     prints it, after checking that each document parses as YAML; NOTES.txt separately.
//
// Usage: render -chart DIR [-f values.yaml]... [-name RELEASE] [-namespace NS] [-o FILE]
//
//	[-notes FILE] [-values-out FILE]
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"text/template"

	"github.com/Masterminds/sprig"
	"github.com/xeipuuv/gojsonschema"
	yaml2 "gopkg.in/yaml.v2"
	"gopkg.in/yaml.v3"
)

// Metadata is Chart.yaml, with the field names templates use (.Chart.Name, .Chart.AppVersion).
type Metadata struct {
	APIVersion   string            `yaml:"apiVersion" json:"apiVersion"`
	Name         string            `yaml:"name" json:"name"`
	Version      string            `yaml:"version" json:"version"`
	AppVersion   string            `yaml:"appVersion" json:"appVersion,omitempty"`
	Description  string            `yaml:"description" json:"description,omitempty"`
	Type         string            `yaml:"type" json:"type,omitempty"`
	KubeVersion  string            `yaml:"kubeVersion" json:"kubeVersion,omitempty"`
	Home         string            `yaml:"home" json:"home,omitempty"`
	Icon         string            `yaml:"icon" json:"icon,omitempty"`
	Keywords     []string          `yaml:"keywords" json:"keywords,omitempty"`
	Sources      []string          `yaml:"sources" json:"sources,omitempty"`
	Annotations  map[string]string `yaml:"annotations" json:"annotations,omitempty"`
	Deprecated   bool              `yaml:"deprecated" json:"deprecated,omitempty"`
	Maintainers  []map[string]any  `yaml:"maintainers" json:"maintainers,omitempty"`
	Dependencies []map[string]any  `yaml:"dependencies" json:"dependencies,omitempty"`
}

// VersionSet is .Capabilities.APIVersions.
type VersionSet []string

// Has tells whether an API version ("apps/v1") or a resource ("apps/v1/Deployment") is known.
func (v VersionSet) Has(apiVersion string) bool {
	for _, x := range v {
		if x == apiVersion {
			return true
		}
	}
	return false
}

// KubeVersion is .Capabilities.KubeVersion.
type KubeVersion struct {
	Version string
	Major   string
	Minor   string
}

func (k KubeVersion) String() string { return k.Version }

// GitVersion is the deprecated alias Helm keeps.
func (k KubeVersion) GitVersion() string { return k.Version }

// Capabilities is .Capabilities.
type Capabilities struct {
	APIVersions VersionSet
	KubeVersion KubeVersion
	HelmVersion map[string]string
}

// Files is .Files: the chart's files other than templates, Chart.yaml, values.yaml and the schema.
type Files map[string][]byte

// Get returns a file's content as a string ("" when absent), as Helm's .Files.Get.
func (f Files) Get(name string) string { return string(f[name]) }

// GetBytes returns a file's content.
func (f Files) GetBytes(name string) []byte { return f[name] }

// Lines returns a file's lines.
func (f Files) Lines(name string) []string {
	s := string(f[name])
	if s == "" {
		return []string{}
	}
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}

// Glob returns the files whose names match a pattern.
func (f Files) Glob(pattern string) Files {
	out := Files{}
	for name, data := range f {
		if ok, _ := path.Match(pattern, name); ok {
			out[name] = data
		}
	}
	return out
}

var defaultAPIVersions = VersionSet{
	"v1", "apps/v1", "batch/v1", "policy/v1", "autoscaling/v1", "autoscaling/v2",
	"networking.k8s.io/v1", "rbac.authorization.k8s.io/v1", "storage.k8s.io/v1",
	"apiextensions.k8s.io/v1", "admissionregistration.k8s.io/v1", "coordination.k8s.io/v1",
	"discovery.k8s.io/v1", "events.k8s.io/v1", "scheduling.k8s.io/v1",
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(s string) error { *m = append(*m, s); return nil }

func die(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "render: "+format+"\n", a...)
	os.Exit(1)
}

// readValues reads a YAML values file as Helm does: YAML -> JSON -> map, numbers as float64.
func readValues(file string) (map[string]any, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var raw any
	if err := yaml.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if raw == nil {
		return map[string]any{}, nil
	}
	j, err := json.Marshal(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	var out map[string]any
	if err := json.Unmarshal(j, &out); err != nil {
		return nil, fmt.Errorf("%s: values must be a mapping: %w", file, err)
	}
	return out, nil
}

// coalesce merges src (the user's values) over dst (the chart's defaults), like Helm's
// CoalesceTables: maps merge key by key, anything else replaces, null deletes.
func coalesce(dst, src map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range dst {
		out[k] = v
	}
	for k, v := range src {
		if v == nil {
			delete(out, k)
			continue
		}
		sm, sIsMap := v.(map[string]any)
		dm, dIsMap := out[k].(map[string]any)
		if sIsMap && dIsMap {
			out[k] = coalesce(dm, sm)
		} else {
			out[k] = v
		}
	}
	return out
}

func toYAML(v any) string {
	// sigs.k8s.io/yaml, which Helm uses: JSON first, then yaml.v2.
	j, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	var obj any
	if err := yaml2.Unmarshal(j, &obj); err != nil {
		return ""
	}
	data, err := yaml2.Marshal(obj)
	if err != nil {
		return ""
	}
	return strings.TrimSuffix(string(data), "\n")
}

func fromYAML(s string) map[string]any {
	m := map[string]any{}
	var raw any
	if err := yaml.Unmarshal([]byte(s), &raw); err != nil {
		m["Error"] = err.Error()
		return m
	}
	j, _ := json.Marshal(raw)
	if err := json.Unmarshal(j, &m); err != nil {
		m["Error"] = err.Error()
	}
	return m
}

func fromYAMLArray(s string) []any {
	var raw any
	if err := yaml.Unmarshal([]byte(s), &raw); err != nil {
		return []any{err.Error()}
	}
	j, _ := json.Marshal(raw)
	var a []any
	if err := json.Unmarshal(j, &a); err != nil {
		return []any{err.Error()}
	}
	return a
}

func toJSON(v any) string {
	data, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	return string(data)
}

func fromJSON(s string) map[string]any {
	m := map[string]any{}
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		m["Error"] = err.Error()
	}
	return m
}

func fromJSONArray(s string) []any {
	var a []any
	if err := json.Unmarshal([]byte(s), &a); err != nil {
		return []any{err.Error()}
	}
	return a
}

// funcMap is Helm's: Sprig without env/expandenv, plus Helm's functions. include, tpl and
// required are placeholders until the templates are parsed (as in Helm's engine).
func funcMap() template.FuncMap {
	f := sprig.TxtFuncMap()
	delete(f, "env")
	delete(f, "expandenv")
	extra := template.FuncMap{
		"toToml":        func(any) string { return "toToml is not supported by this renderer" },
		"toYaml":        toYAML,
		"fromYaml":      fromYAML,
		"fromYamlArray": fromYAMLArray,
		"toJson":        toJSON,
		"fromJson":      fromJSON,
		"fromJsonArray": fromJSONArray,
		"include":       func(string, any) (string, error) { return "not implemented", nil },
		"tpl":           func(string, any) (any, error) { return "not implemented", nil },
		"required":      func(string, any) (any, error) { return "not implemented", nil },
		// `helm template` has no cluster: lookup finds nothing.
		"lookup": func(string, string, string, string) (map[string]any, error) {
			return map[string]any{}, nil
		},
	}
	for k, v := range extra {
		f[k] = v
	}
	return f
}

const recursionMax = 1000

type engine struct {
	t        *template.Template
	included map[string]int
}

func (e *engine) include(name string, data any) (string, error) {
	var buf strings.Builder
	if e.included[name] > recursionMax {
		return "", fmt.Errorf("rendering template has a nested reference name: %s", name)
	}
	e.included[name]++
	err := e.t.ExecuteTemplate(&buf, name, data)
	e.included[name]--
	return buf.String(), err
}

func (e *engine) tpl(text string, vals any) (string, error) {
	t, err := e.t.Clone()
	if err != nil {
		return "", err
	}
	t.Option("missingkey=zero")
	sub := &engine{t: t, included: e.included}
	t.Funcs(template.FuncMap{"include": sub.include, "tpl": sub.tpl})
	name := "tpl"
	if m, ok := vals.(map[string]any); ok {
		if tm, ok := m["Template"].(map[string]any); ok {
			if n, ok := tm["Name"].(string); ok {
				name = n
			}
		}
	}
	if _, err := t.New(name).Parse(text); err != nil {
		return "", fmt.Errorf("cannot parse template %q: %w", text, err)
	}
	var buf strings.Builder
	if err := t.ExecuteTemplate(&buf, name, vals); err != nil {
		return "", fmt.Errorf("error during tpl function execution for %q: %w", text, err)
	}
	return strings.ReplaceAll(buf.String(), "<no value>", ""), nil
}

func required(warn string, val any) (any, error) {
	if val == nil {
		return val, errors.New(warn)
	}
	if s, ok := val.(string); ok && s == "" {
		return val, errors.New(warn)
	}
	return val, nil
}

var manifestSep = regexp.MustCompile(`(?m)(?:^|\s*\n)---\s*`)

func main() {
	var valueFiles multiFlag
	chartDir := flag.String("chart", "", "the chart directory")
	flag.Var(&valueFiles, "f", "a values file (repeatable; later files win)")
	release := flag.String("name", "ds2grist", "release name")
	namespace := flag.String("namespace", "default", "release namespace")
	out := flag.String("o", "-", "where to write the manifests")
	notes := flag.String("notes", "", "where to write the rendered NOTES.txt")
	valuesOut := flag.String("values-out", "", "where to write the merged values (JSON)")
	kubeVersion := flag.String("kube-version", "v1.29.0", ".Capabilities.KubeVersion")
	var apiVersions multiFlag
	flag.Var(&apiVersions, "api-versions", "extra .Capabilities.APIVersions (repeatable)")
	flag.Parse()
	if *chartDir == "" {
		die("-chart DIR is required")
	}

	// Chart.yaml
	var meta Metadata
	data, err := os.ReadFile(filepath.Join(*chartDir, "Chart.yaml"))
	if err != nil {
		die("%v", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&meta); err != nil {
		die("Chart.yaml: %v", err)
	}
	if meta.APIVersion != "v2" || meta.Name == "" || meta.Version == "" {
		die("Chart.yaml: apiVersion must be v2, name and version are required")
	}

	// Values: chart defaults, then each -f file.
	values, err := readValues(filepath.Join(*chartDir, "values.yaml"))
	if err != nil {
		die("%v", err)
	}
	for _, f := range valueFiles {
		user, err := readValues(f)
		if err != nil {
			die("%v", err)
		}
		values = coalesce(values, user)
	}
	if *valuesOut != "" {
		j, _ := json.MarshalIndent(values, "", "  ")
		if err := os.WriteFile(*valuesOut, append(j, '\n'), 0o644); err != nil {
			die("%v", err)
		}
	}

	// values.schema.json, as Helm validates it: on the merged values.
	if schema, err := os.ReadFile(filepath.Join(*chartDir, "values.schema.json")); err == nil {
		res, err := gojsonschema.Validate(gojsonschema.NewBytesLoader(schema), gojsonschema.NewGoLoader(values))
		if err != nil {
			die("values.schema.json: %v", err)
		}
		if !res.Valid() {
			var b strings.Builder
			for _, e := range res.Errors() {
				fmt.Fprintf(&b, "- %s\n", e)
			}
			die("values don't meet the specifications of the schema(s) in the following chart(s):\n%s:\n%s", meta.Name, b.String())
		}
	}

	// Templates and files.
	templates := map[string]string{}
	files := Files{}
	root := filepath.Clean(*chartDir)
	err = filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		if info.IsDir() {
			if rel == "charts" {
				return filepath.SkipDir
			}
			return nil
		}
		content, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		switch {
		case strings.HasPrefix(rel, "templates/"):
			templates[meta.Name+"/"+rel] = string(content)
		case rel == "Chart.yaml" || rel == "values.yaml" || rel == "values.schema.json" ||
			rel == ".helmignore" || rel == "Chart.lock":
		default:
			files[rel] = content
		}
		return nil
	})
	if err != nil {
		die("%v", err)
	}

	t := template.New("gotpl").Option("missingkey=zero").Funcs(funcMap())
	names := make([]string, 0, len(templates))
	for n := range templates {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if _, err := t.New(n).Parse(templates[n]); err != nil {
			die("parse error in %q: %v", n, err)
		}
	}
	e := &engine{t: t, included: map[string]int{}}
	t.Funcs(template.FuncMap{"include": e.include, "tpl": e.tpl, "required": required})

	kv := strings.TrimPrefix(*kubeVersion, "v")
	parts := strings.SplitN(kv, ".", 3)
	if len(parts) < 2 {
		die("-kube-version: want vMAJOR.MINOR.PATCH")
	}
	caps := &Capabilities{
		APIVersions: append(append(VersionSet{}, defaultAPIVersions...), apiVersions...),
		KubeVersion: KubeVersion{Version: *kubeVersion, Major: parts[0], Minor: parts[1]},
		HelmVersion: map[string]string{"version": "v3.14.0"},
	}
	top := map[string]any{
		"Values": values,
		"Release": map[string]any{
			"Name": *release, "Namespace": *namespace, "IsUpgrade": false, "IsInstall": true,
			"Revision": 1, "Service": "Helm",
		},
		"Chart":        &meta,
		"Capabilities": caps,
		"Files":        files,
	}

	var manifests strings.Builder
	for _, n := range names {
		base := path.Base(n)
		if strings.HasPrefix(base, "_") {
			continue
		}
		vals := map[string]any{}
		for k, v := range top {
			vals[k] = v
		}
		vals["Template"] = map[string]any{"Name": n, "BasePath": meta.Name + "/templates"}
		var buf strings.Builder
		if err := t.ExecuteTemplate(&buf, n, vals); err != nil {
			die("%v", err)
		}
		rendered := strings.ReplaceAll(buf.String(), "<no value>", "")
		if base == "NOTES.txt" {
			if *notes != "" {
				if err := os.WriteFile(*notes, []byte(rendered), 0o644); err != nil {
					die("%v", err)
				}
			}
			continue
		}
		for i, doc := range manifestSep.Split(rendered, -1) {
			if strings.TrimSpace(doc) == "" {
				continue
			}
			var head struct {
				APIVersion string `yaml:"apiVersion"`
				Kind       string `yaml:"kind"`
			}
			if err := yaml2.Unmarshal([]byte(doc), &head); err != nil {
				die("YAML parse error on %s (document %d): %v\n%s", n, i, err, doc)
			}
			fmt.Fprintf(&manifests, "---\n# Source: %s\n%s\n", n, strings.TrimRight(doc, " \n"))
		}
	}
	if *out == "-" {
		fmt.Print(manifests.String())
	} else if err := os.WriteFile(*out, []byte(manifests.String()), 0o644); err != nil {
		die("%v", err)
	}
}
