package testhub

import (
	"errors"
	"os"

	"github.com/hubflow/hubflow/controllers"
	"github.com/hubflow/hubflow/internal/testenv"
	"github.com/hubflow/hubflow/internal/testnats"
)

// Stack is a whole hub for a test package's TestMain: an API server with
// the CRDs, one nats-server and the manager reconciling into it.
type Stack struct {
	Env     *testenv.Env
	NATS    *testnats.Server
	Manager *Manager
	dir     string
}

// StartStack starts a Stack; on error whatever started is stopped.
func StartStack(opts controllers.Options) (*Stack, error) {
	s := &Stack{}
	var err error
	if s.Env, err = testenv.Start(); err != nil {
		return nil, err
	}
	if s.dir, err = os.MkdirTemp("", "hubflow-stack-"); err != nil {
		s.Stop()
		return nil, err
	}
	if s.NATS, err = testnats.Start(s.dir, 0); err != nil {
		s.Stop()
		return nil, err
	}
	if s.Manager, err = Start(s.Env.Config, s.Env.Scheme, s.NATS.URL(), opts); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

// Stop stops what Start started, in reverse order, and removes its files.
func (s *Stack) Stop() error {
	var errs []error
	if s.Manager != nil {
		errs = append(errs, s.Manager.Stop())
	}
	if s.NATS != nil {
		s.NATS.Stop()
	}
	if s.Env != nil {
		errs = append(errs, s.Env.Stop())
	}
	if s.dir != "" {
		errs = append(errs, os.RemoveAll(s.dir))
	}
	return errors.Join(errs...)
}
