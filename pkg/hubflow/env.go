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
func ProducerFromEnv(ctx context.Context, name string, opts ...Option) (*Producer, error) {
	b, dir, err := fromEnv(name)
	if err != nil {
		return nil, err
	}
	return NewProducer(ctx, b, append(credsFileOption(b, dir), opts...)...)
}

// ConsumerFromEnv reads the binding named name under $SERVICE_BINDING_ROOT
// and returns its Consumer (see NewConsumer).
func ConsumerFromEnv(ctx context.Context, name string, opts ...Option) (*Consumer, error) {
	b, dir, err := fromEnv(name)
	if err != nil {
		return nil, err
	}
	return NewConsumer(ctx, b, append(credsFileOption(b, dir), opts...)...)
}

func fromEnv(name string) (binding.Binding, string, error) {
	b, err := binding.FromEnv(name)
	if err != nil {
		return binding.Binding{}, "", err
	}
	return b, filepath.Join(os.Getenv("SERVICE_BINDING_ROOT"), name), nil
}

func credsFileOption(b binding.Binding, dir string) []Option {
	if len(b.Creds) == 0 {
		return nil
	}
	return []Option{WithCredsFile(filepath.Join(dir, binding.KeyCreds))}
}
