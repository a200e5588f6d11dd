// Package manifests reads hubflow objects from YAML the way kubectl would,
// for the tests that apply config/samples and for the demo.
package manifests

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	yamlutil "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// DecodeAll splits a multi-document YAML stream into objects. Empty
// documents are skipped.
func DecodeAll(r io.Reader) ([]*unstructured.Unstructured, error) {
	reader := yamlutil.NewYAMLReader(bufio.NewReader(r))
	var objs []*unstructured.Unstructured
	for {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, err
		}
		js, err := yaml.YAMLToJSON(doc)
		if err != nil {
			return nil, err
		}
		if len(bytes.TrimSpace(js)) == 0 || string(bytes.TrimSpace(js)) == "null" {
			continue
		}
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(js); err != nil {
			return nil, err
		}
		objs = append(objs, u)
	}
}

// Kustomization is the part of a kustomization.yaml hubflow's samples use.
type Kustomization struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Resources  []string `json:"resources"`
}

// ReadKustomization reads dir/kustomization.yaml, refusing unknown fields so
// a sample folder that needs a real kustomize build is noticed.
func ReadKustomization(dir string) (Kustomization, error) {
	var k Kustomization
	raw, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		return k, err
	}
	if err := yaml.UnmarshalStrict(raw, &k, yaml.DisallowUnknownFields); err != nil {
		return k, fmt.Errorf("%s: %w", filepath.Join(dir, "kustomization.yaml"), err)
	}
	return k, nil
}

// ReadFile decodes every object of one YAML file.
func ReadFile(path string) ([]*unstructured.Unstructured, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	objs, err := DecodeAll(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return objs, nil
}
