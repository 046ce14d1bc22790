package grafana

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

func TestCommittedDashboardIsGenerated(t *testing.T) {
	want, err := JSON()
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(File)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s is not what dashboard.go builds: run go run ./grafana/gen and commit the result", File)
	}
}

// panelJSON is the part of a generated panel this test reads.
type panelJSON struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource *struct {
		UID string `json:"uid"`
	} `json:"datasource"`
	GridPos struct{ H, W, X, Y int } `json:"gridPos"`
	Targets []struct {
		Expr         string `json:"expr"`
		RefID        string `json:"refId"`
		LegendFormat string `json:"legendFormat"`
		Datasource   struct {
			UID string `json:"uid"`
		} `json:"datasource"`
	} `json:"targets"`
	FieldConfig struct {
		Defaults struct {
			Unit string `json:"unit"`
		} `json:"defaults"`
	} `json:"fieldConfig"`
}

func loadPanels(t *testing.T) []panelJSON {
	t.Helper()
	data, err := JSON()
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		UID    string      `json:"uid"`
		Panels []panelJSON `json:"panels"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatal(err)
	}
	if d.UID != UID {
		t.Errorf("uid %q, want %q", d.UID, UID)
	}
	return d.Panels
}

func TestPanelsAreWellFormed(t *testing.T) {
	panels := loadPanels(t)
	ids := map[int]bool{}
	// Cells of the 24-column grid already taken, to catch overlapping panels.
	taken := map[[2]int]string{}
	for _, p := range panels {
		if ids[p.ID] || p.ID == 0 {
			t.Errorf("panel %q: id %d is zero or repeated", p.Title, p.ID)
		}
		ids[p.ID] = true
		if p.GridPos.X+p.GridPos.W > 24 || p.GridPos.W == 0 || p.GridPos.H == 0 {
			t.Errorf("panel %q: grid position %+v off the 24-column grid", p.Title, p.GridPos)
		}
		for x := p.GridPos.X; x < p.GridPos.X+p.GridPos.W; x++ {
			for y := p.GridPos.Y; y < p.GridPos.Y+p.GridPos.H; y++ {
				if other, ok := taken[[2]int{x, y}]; ok {
					t.Fatalf("panels %q and %q overlap at %d,%d", other, p.Title, x, y)
				}
				taken[[2]int{x, y}] = p.Title
			}
		}
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q does not follow $datasource", p.Title)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		refs := map[string]bool{}
		for _, q := range p.Targets {
			if q.Expr == "" || q.RefID == "" || refs[q.RefID] || q.Datasource.UID != "${datasource}" {
				t.Errorf("panel %q: query %+v lacks an expression, a distinct refId or $datasource", p.Title, q)
			}
			refs[q.RefID] = true
		}
	}
}

// TestDashboardShowsEveryQuestion: executions/s by outcome, duration p50/p95/p99, lag,
// errors by kind, Redis up, handler version, and the latest output values of the classic
// handler.
func TestDashboardShowsEveryQuestion(t *testing.T) {
	panels := loadPanels(t)
	find := func(title string) *panelJSON {
		for i := range panels {
			if panels[i].Title == title {
				return &panels[i]
			}
		}
		t.Errorf("no panel %q", title)
		return nil
	}
	exprs := func(p *panelJSON) string {
		if p == nil {
			return ""
		}
		var all []string
		for _, q := range p.Targets {
			all = append(all, q.Expr+" legend="+q.LegendFormat)
		}
		return strings.Join(all, "\n")
	}
	for title, want := range map[string][]string{
		"Executions/s by outcome":           {"sum by (pod, function, outcome)", "function_outcome:eventrt_executions:rate5m", "legend={{pod}} {{function}} {{outcome}}"},
		"Execution duration":                {"histogram_quantile(0.5,", "function:eventrt_execution_duration_seconds:p95_rate5m", "histogram_quantile(0.99,", "eventrt_execution_duration_seconds_bucket"},
		"Trigger-to-output lag":             {"function:eventrt_trigger_lag_seconds:p95_rate5m", "eventrt_trigger_lag_seconds_bucket"},
		"Errors/s by kind":                  {"sum by (pod, function, kind)", "function_kind:eventrt_errors:rate5m"},
		"Replicas up":                       {"sum by (namespace, job) (up{", "legend={{namespace}}/{{job}}"},
		"Error ratio":                       {"> 0) or", "* 0"},
		"Stream: oldest waiting entry":      {"eventrt_stream_oldest_entry_age_seconds"},
		"Dead letters":                      {"round(increase(eventrt_dead_letters_total"},
		"Redis":                             {"eventrt_redis_up"},
		"Handler versions":                  {"eventrt_handler_info", "hash", "eventrt_handler_mtime_seconds"},
		"Network egress and memory caching": {"eventrt_output_value", "percent_"},
		"CPU moving averages (60 samples)":  {"eventrt_output_value", "avg-util-cpu"},
		"Executions counted by the handler": {"eventrt_output_value", `field=~"executions"`},
	} {
		got := exprs(find(title))
		for _, w := range want {
			if !strings.Contains(got, w) {
				t.Errorf("panel %q: queries %q lack %q", title, got, w)
			}
		}
	}
	for title, unit := range map[string]string{"Execution duration": "s", "CPU": "suffix: cores", "Error ratio": "percentunit"} {
		if p := find(title); p != nil && p.FieldConfig.Defaults.Unit != unit {
			t.Errorf("%s unit %q, want %s", title, p.FieldConfig.Defaults.Unit, unit)
		}
	}
}

// aggregation finds an aggregation not followed by by/without: summed across deployments.
var aggregation = regexp.MustCompile(`\b(sum|max|min|count|avg)\s*\(`)

// TestEveryQueryIsFiltered: every query reads through the namespace, job and pod filters
// (function too where the series has one), never aggregates without a by, and no legend
// names the instance (an IP:port on Kubernetes).
func TestEveryQueryIsFiltered(t *testing.T) {
	for _, p := range loadPanels(t) {
		for _, q := range p.Targets {
			if !strings.Contains(q.Expr, proc) {
				t.Errorf("panel %q: query %s does not filter by namespace, job and pod", p.Title, q.Expr)
			}
			if !strings.Contains(q.Expr, sel) && !strings.Contains(q.Expr, "up{") && !strings.Contains(q.Expr, "process_") &&
				!strings.Contains(q.Expr, "eventrt_redis_up") && !strings.Contains(q.Expr, "eventrt_build_info") {
				t.Errorf("panel %q: query %s does not filter by function", p.Title, q.Expr)
			}
			if m := aggregation.FindStringIndex(q.Expr); m != nil {
				t.Errorf("panel %q: query %s aggregates without by", p.Title, q.Expr)
			}
			if strings.Contains(q.LegendFormat, "instance") {
				t.Errorf("panel %q: legend %q names the instance", p.Title, q.LegendFormat)
			}
		}
	}
}

// TestProvisioningFiles decodes the provisioning files strictly into the fields Grafana
// reads, and checks the dashboard provider serves a directory that holds the dashboard.
func TestProvisioningFiles(t *testing.T) {
	var ds struct {
		APIVersion  int `json:"apiVersion"`
		Datasources []struct {
			Name      string         `json:"name"`
			UID       string         `json:"uid"`
			Type      string         `json:"type"`
			Access    string         `json:"access"`
			URL       string         `json:"url"`
			IsDefault bool           `json:"isDefault"`
			Editable  bool           `json:"editable"`
			JSONData  map[string]any `json:"jsonData"`
		} `json:"datasources"`
	}
	data, err := os.ReadFile(filepath.Join("provisioning", "datasources", "prometheus.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(data, &ds); err != nil {
		t.Fatalf("datasources: %v", err)
	}
	if ds.APIVersion != 1 || len(ds.Datasources) != 1 || ds.Datasources[0].Type != "prometheus" || ds.Datasources[0].URL == "" {
		t.Errorf("datasources: want one prometheus data source with a URL, got %+v", ds)
	}

	var dp struct {
		APIVersion int `json:"apiVersion"`
		Providers  []struct {
			Name                  string `json:"name"`
			Folder                string `json:"folder"`
			Type                  string `json:"type"`
			DisableDeletion       bool   `json:"disableDeletion"`
			AllowUIUpdates        bool   `json:"allowUiUpdates"`
			UpdateIntervalSeconds int    `json:"updateIntervalSeconds"`
			Options               struct {
				Path string `json:"path"`
			} `json:"options"`
		} `json:"providers"`
	}
	data, err = os.ReadFile(filepath.Join("provisioning", "dashboards", "eventrt.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(data, &dp); err != nil {
		t.Fatalf("dashboard provider: %v", err)
	}
	if dp.APIVersion != 1 || len(dp.Providers) != 1 || dp.Providers[0].Type != "file" || dp.Providers[0].Options.Path == "" {
		t.Errorf("dashboard provider: want one file provider with a path, got %+v", dp)
	}
	// The README's mounts put dashboards/ at the provider's path.
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(readme, []byte("grafana/dashboards:"+dp.Providers[0].Options.Path)) {
		t.Errorf("README.md does not mount grafana/dashboards at the provider path %s", dp.Providers[0].Options.Path)
	}
}
