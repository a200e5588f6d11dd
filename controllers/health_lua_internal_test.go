package controllers

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	lua "github.com/yuin/gopher-lua"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	hubflowv1 "github.com/hubflow/hubflow/api/v1alpha1"
)

var argoHealthScript = filepath.Join("..", "config", "argocd", "health.lua")

// toLua turns a JSON-shaped Go value into the Lua value Argo CD gives its
// health scripts as obj.
func toLua(L *lua.LState, v any) lua.LValue {
	switch v := v.(type) {
	case map[string]any:
		t := L.NewTable()
		for k, e := range v {
			t.RawSetString(k, toLua(L, e))
		}
		return t
	case []any:
		t := L.NewTable()
		for _, e := range v {
			t.Append(toLua(L, e))
		}
		return t
	case string:
		return lua.LString(v)
	case bool:
		return lua.LBool(v)
	case int64:
		return lua.LNumber(v)
	case float64:
		return lua.LNumber(v)
	}
	return lua.LNil
}

// argoHealth runs the shipped script the way Argo CD does: obj is a global,
// the script returns a table with status and message.
func argoHealth(t *testing.T, obj map[string]any) (status, message string) {
	t.Helper()
	script, err := os.ReadFile(argoHealthScript)
	if err != nil {
		t.Fatal(err)
	}
	L := lua.NewState()
	defer L.Close()
	L.SetGlobal("obj", toLua(L, obj))
	fn, err := L.LoadString(string(script))
	if err != nil {
		t.Fatalf("health.lua does not parse: %v", err)
	}
	L.Push(fn)
	if err := L.PCall(0, 1, nil); err != nil {
		t.Fatalf("health.lua fails: %v", err)
	}
	hs, ok := L.Get(-1).(*lua.LTable)
	if !ok {
		t.Fatalf("health.lua returned %s, want a table", L.Get(-1).Type())
	}
	return hs.RawGetString("status").String(), hs.RawGetString("message").String()
}

func consumerObject(t *testing.T, generation int64, write func(conditions)) map[string]any {
	t.Helper()
	c := &hubflowv1.Consumer{}
	c.Name, c.Namespace, c.Generation = "c", "ns", generation
	if write != nil {
		write(newConditions(&c.Status.CommonStatus, 1))
	}
	obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(c)
	if err != nil {
		t.Fatal(err)
	}
	return obj
}

func TestArgoCDHealthFollowsEveryReason(t *testing.T) {
	cases := []struct {
		name       string
		generation int64
		write      func(conditions)
		want       string
	}{
		{"never reconciled", 1, nil, "Progressing"},
		{"ready", 1, func(c conditions) { c.ready("durable d reads stream s") }, "Healthy"},
		{"ready for an older generation", 2, func(c conditions) { c.ready("ok") }, "Progressing"},
	}
	for reason, kind := range failureKinds {
		want := "Progressing"
		if kind == permanent {
			want = "Degraded"
		}
		for _, usable := range []bool{false, true} {
			cases = append(cases, struct {
				name       string
				generation int64
				write      func(conditions)
				want       string
			}{reason, 1, func(c conditions) { c.failed(usable, reason, "because of %s", "it") }, want})
		}
	}
	for _, tc := range cases {
		status, message := argoHealth(t, consumerObject(t, tc.generation, tc.write))
		if status != tc.want {
			t.Errorf("%s: Argo CD health %s (%s), want %s", tc.name, status, message, tc.want)
		}
		if status == "Degraded" && !strings.Contains(message, tc.name) {
			t.Errorf("%s: Degraded message %q does not name the reason", tc.name, message)
		}
	}
}

// TestArgoCDConfigMapCarriesTheScript: the argocd-cm patch users merge holds
// exactly health.lua, under a key that covers the three kinds.
func TestArgoCDConfigMapCarriesTheScript(t *testing.T) {
	script, err := os.ReadFile(argoHealthScript)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join("..", "config", "argocd", "argocd-cm-patch.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var cm struct {
		Data map[string]string `json:"data"`
	}
	if err := yaml.Unmarshal(raw, &cm); err != nil {
		t.Fatal(err)
	}
	const key = "resource.customizations.health.hubflow.io_*"
	if got := cm.Data[key]; got != string(script) {
		t.Errorf("argocd-cm-patch.yaml's %s differs from health.lua: regenerate it (indent health.lua by four spaces under the key)", key)
	}
}
