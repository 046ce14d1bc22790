package bundle

import (
	"fmt"
	"strconv"

	yamlv2 "go.yaml.in/yaml/v2"
	"sigs.k8s.io/yaml"
)

// yamlToJSON converts a YAML document to JSON like sigs.k8s.io/yaml, but refuses mapping keys
// that YAML 1.1 reads as booleans or null: sigs.k8s.io/yaml would silently turn the key `n:`
// into "false", and an expected output {n: 2} would never match.
func yamlToJSON(data []byte) ([]byte, error) {
	var v any
	if err := yamlv2.Unmarshal(data, &v); err != nil {
		return nil, err
	}
	if err := checkKeys(v, ""); err != nil {
		return nil, err
	}
	return yaml.YAMLToJSON(data)
}

func checkKeys(v any, path string) error {
	switch t := v.(type) {
	case map[any]any:
		for k, val := range t {
			switch k.(type) {
			case bool, nil:
				where := path
				if where == "" {
					where = "the top level"
				}
				return fmt.Errorf("in %s, a key reads as %v, as YAML reads n, y, no, yes, on, off and ~: quote it (\"n\": ...)", where, k)
			}
			if err := checkKeys(val, path+"."+fmt.Sprint(k)); err != nil {
				return err
			}
		}
	case []any:
		for i, val := range t {
			if err := checkKeys(val, path+"["+strconv.Itoa(i)+"]"); err != nil {
				return err
			}
		}
	}
	return nil
}
