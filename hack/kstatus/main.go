// Command kstatus prints what kstatus (sigs.k8s.io/cli-utils/pkg/kstatus/status), the status
// library Flux and kpt judge health with, computes for Kubernetes objects.
//
//	kubectl get modeltemplates -n NS -o json | kstatus
//
// Input on stdin: one object, or a List of them (as `kubectl get -o json` prints). Output on
// stdout: one JSON line per object, {"kind", "namespace", "name", "generation", "status",
// "message", "conditions"}, in input order. Exit 1 when the input is not JSON or kstatus
// returns an error for an object.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type verdict struct {
	Kind       string   `json:"kind"`
	Namespace  string   `json:"namespace,omitempty"`
	Name       string   `json:"name"`
	Generation int64    `json:"generation"`
	Status     string   `json:"status"`
	Message    string   `json:"message"`
	Conditions []string `json:"conditions"`
}

func objects(raw []byte) ([]map[string]interface{}, error) {
	// Integers as int64, as the API machinery (and kstatus) expects them.
	var doc map[string]interface{}
	if err := utiljson.Unmarshal(raw, &doc); err != nil {
		return nil, err
	}
	items, isList := doc["items"].([]interface{})
	if !isList {
		return []map[string]interface{}{doc}, nil
	}
	out := make([]map[string]interface{}, 0, len(items))
	for i, item := range items {
		obj, ok := item.(map[string]interface{})
		if !ok {
			return nil, fmt.Errorf("items[%d] is not an object", i)
		}
		out = append(out, obj)
	}
	return out, nil
}

func run(in io.Reader, out io.Writer) error {
	raw, err := io.ReadAll(in)
	if err != nil {
		return err
	}
	objs, err := objects(raw)
	if err != nil {
		return fmt.Errorf("stdin: %w", err)
	}
	enc := json.NewEncoder(out)
	for _, obj := range objs {
		u := &unstructured.Unstructured{Object: obj}
		result, err := status.Compute(u)
		if err != nil {
			return fmt.Errorf("%s %s/%s: %w", u.GetKind(), u.GetNamespace(), u.GetName(), err)
		}
		conditions := make([]string, 0, len(result.Conditions))
		for _, c := range result.Conditions {
			conditions = append(conditions, fmt.Sprintf("%s=%s", c.Type, c.Status))
		}
		if err := enc.Encode(verdict{
			Kind:       u.GetKind(),
			Namespace:  u.GetNamespace(),
			Name:       u.GetName(),
			Generation: u.GetGeneration(),
			Status:     result.Status.String(),
			Message:    result.Message,
			Conditions: conditions,
		}); err != nil {
			return err
		}
	}
	return nil
}

func main() {
	if err := run(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "kstatus:", err)
		os.Exit(1)
	}
}
