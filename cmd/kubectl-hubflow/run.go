package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/api/meta"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	hubflowv1 "github.com/hubflow/hubflow/api/v1alpha1"
	"github.com/hubflow/hubflow/internal/deadletter"
	"github.com/hubflow/hubflow/internal/topology"
)

const usage = `Show hubflow's flows: producers -> Topics -> consumers.

Usage:
  kubectl hubflow graph  [-n NAMESPACE | -A] [-o svg|dot|mermaid] > flows.svg
  kubectl hubflow status [-n NAMESPACE | -A]
  kubectl hubflow replay CONSUMER [-n NAMESPACE] [--seq 3,5] [--wait 1m]

Commands:
  graph   draw the flows with the declared and effective semantic on each edge,
          lag on each consumer, what is not Ready in red, and the n+1 arithmetic
          (connections through the hub vs pairwise wiring) per namespace.
  status  a table of every object: not Ready ones first with reason and message,
          consumer lag (pending/unacked) and credentials expiry.
  replay  send a Consumer's dead letters back to its Topic (all, or the listed
          dead-letter stream sequences), each once and under its original
          idempotency key; waits until the manager has done it.

Flags:
`

// errUsage marks a command line that cannot be run as given.
var errUsage = errors.New("usage")

// options are the command line, parsed.
type options struct {
	command       string
	kubeconfig    string
	context       string
	namespace     string
	allNamespaces bool
	output        string
	// replay
	consumer  string
	sequences string
	wait      time.Duration
}

// Run runs the plugin with args (without the program name), writing its
// result to stdout and usage to stderr.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	opts, err := parse(args, stderr)
	if err != nil {
		return err
	}
	c, ns, err := connect(opts)
	if err != nil {
		return err
	}
	if opts.command == "replay" {
		return replay(ctx, c, ns, opts, stdout)
	}
	objs, err := list(ctx, c, ns)
	if err != nil {
		return err
	}
	switch opts.command {
	case "graph":
		g := topology.Build(objs.Topics, objs.Producers, objs.Consumers)
		return renderers[opts.output](stdout, g)
	default:
		return topology.WriteStatus(stdout, topology.Status(objs.Topics, objs.Producers, objs.Consumers, time.Now()))
	}
}

var renderers = map[string]func(io.Writer, topology.Graph) error{
	"svg": topology.SVG, "dot": topology.DOT, "mermaid": topology.Mermaid,
}

func parse(args []string, help io.Writer) (options, error) {
	var o options
	fs := pflag.NewFlagSet("kubectl hubflow", pflag.ContinueOnError)
	fs.SetOutput(help)
	fs.Usage = func() {
		fmt.Fprint(help, usage)
		fs.PrintDefaults()
	}
	fs.StringVar(&o.kubeconfig, "kubeconfig", "", "path to the kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
	fs.StringVar(&o.context, "context", "", "the kubeconfig context to use")
	fs.StringVarP(&o.namespace, "namespace", "n", "", "the namespace to show (default: the context's namespace)")
	fs.BoolVarP(&o.allNamespaces, "all-namespaces", "A", false, "show every namespace, one group each")
	fs.StringVarP(&o.output, "output", "o", "svg", "graph output format: svg, dot or mermaid")
	fs.StringVar(&o.sequences, "seq", "", "replay: the dead-letter stream sequences to replay, comma-separated (default: all); status.deadLetter and the letters' Hubflow-Dead-Letter-* headers say which")
	fs.DurationVar(&o.wait, "wait", 0, "replay: how long to wait for the manager to carry the request out (default 1m; 0s: do not wait)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() < 1 {
		fs.Usage()
		return o, fmt.Errorf("%w: want a command, graph, status or replay", errUsage)
	}
	o.command = fs.Arg(0)
	if o.command == "replay" {
		if fs.NArg() != 2 {
			return o, fmt.Errorf("%w: replay takes one Consumer name, got %q", errUsage, fs.Args()[1:])
		}
		if o.allNamespaces || fs.Changed("output") {
			return o, fmt.Errorf("%w: replay takes neither --all-namespaces nor --output", errUsage)
		}
		if o.sequences != "" {
			if _, err := deadletter.ParseSelection(o.sequences); err != nil {
				return o, fmt.Errorf("%w: --seq %v", errUsage, err)
			}
		}
		o.consumer = fs.Arg(1)
		if !fs.Changed("wait") {
			o.wait = time.Minute
		}
		return o, nil
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return o, fmt.Errorf("%w: want one command, graph or status, got %q", errUsage, fs.Args())
	}
	if fs.Changed("seq") || fs.Changed("wait") {
		return o, fmt.Errorf("%w: --seq and --wait apply to replay only", errUsage)
	}
	switch o.command {
	case "graph":
		if _, ok := renderers[o.output]; !ok {
			return o, fmt.Errorf("%w: --output %q: want svg, dot or mermaid", errUsage, o.output)
		}
	case "status":
		if fs.Changed("output") {
			return o, fmt.Errorf("%w: --output applies to graph only", errUsage)
		}
	default:
		fs.Usage()
		return o, fmt.Errorf("%w: unknown command %q: want graph or status", errUsage, o.command)
	}
	if o.allNamespaces && o.namespace != "" {
		return o, fmt.Errorf("%w: --namespace and --all-namespaces exclude each other", errUsage)
	}
	return o, nil
}

// connect reads the kubeconfig as kubectl does and returns a client and the
// namespace to list ("" for all of them).
func connect(o options) (client.Client, string, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = o.kubeconfig
	overrides := &clientcmd.ConfigOverrides{CurrentContext: o.context}
	overrides.Context.Namespace = o.namespace
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides)
	cfg, err := cc.ClientConfig()
	if err != nil {
		return nil, "", fmt.Errorf("reading kubeconfig: %w", err)
	}
	ns := ""
	if !o.allNamespaces {
		if ns, _, err = cc.Namespace(); err != nil {
			return nil, "", fmt.Errorf("reading the namespace from kubeconfig: %w", err)
		}
	}
	scheme := kruntime.NewScheme()
	if err := hubflowv1.AddToScheme(scheme); err != nil {
		return nil, "", fmt.Errorf("building scheme: %w", err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, "", fmt.Errorf("creating a client: %w", err)
	}
	return c, ns, nil
}

type lists struct {
	Topics    []hubflowv1.Topic
	Producers []hubflowv1.Producer
	Consumers []hubflowv1.Consumer
}

func list(ctx context.Context, c client.Client, ns string) (lists, error) {
	var (
		topics    hubflowv1.TopicList
		producers hubflowv1.ProducerList
		consumers hubflowv1.ConsumerList
	)
	for _, l := range []client.ObjectList{&topics, &producers, &consumers} {
		if err := c.List(ctx, l, client.InNamespace(ns)); err != nil {
			if meta.IsNoMatchError(err) {
				return lists{}, fmt.Errorf("hubflow's CRDs are not installed in this cluster (see docs/install.md): %w", err)
			}
			return lists{}, fmt.Errorf("listing %T: %w", l, err)
		}
	}
	return lists{Topics: topics.Items, Producers: producers.Items, Consumers: consumers.Items}, nil
}
