package hubflow

import (
	"context"
	"os"
	"path/filepath"

	"github.com/hubflow/hubflow/pkg/binding"
)

// ProducerFromEnv reads the binding named name under $SERVICE_BINDING_ROOT
// and returns its Producer (see NewProducer). Credentials are re-read from
// the mounted file at every reconnect, so renewed ones are used.
func ProducerFromEnv(ctx context.Context, name string, opts ...ProducerOption) (*Producer, error) {
	b, dir, err := fromEnv(name)
	if err != nil {
		return nil, err
	}
	if creds := credsFileOption(b, dir); creds != nil {
		opts = append([]ProducerOption{creds}, opts...)
	}
	return NewProducer(ctx, b, opts...)
}

// ConsumerFromEnv reads the binding named name under $SERVICE_BINDING_ROOT
// and returns its Consumer (see NewConsumer).
func ConsumerFromEnv(ctx context.Context, name string, opts ...ConsumerOption) (*Consumer, error) {
	b, dir, err := fromEnv(name)
	if err != nil {
		return nil, err
	}
	if creds := credsFileOption(b, dir); creds != nil {
		opts = append([]ConsumerOption{creds}, opts...)
	}
	return NewConsumer(ctx, b, opts...)
}

func fromEnv(name string) (binding.Binding, string, error) {
	b, err := binding.FromEnv(name)
	if err != nil {
		return binding.Binding{}, "", err
	}
	return b, filepath.Join(os.Getenv("SERVICE_BINDING_ROOT"), name), nil
}

// credsFileOption is the binding's credentials file, nil without one. It
// comes first, so an explicit WithCredsFile overrides it.
func credsFileOption(b binding.Binding, dir string) Option {
	if len(b.Creds) == 0 {
		return nil
	}
	return WithCredsFile(filepath.Join(dir, binding.KeyCreds))
}
