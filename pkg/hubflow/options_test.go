package hubflow

import (
	"testing"
	"time"
)

// An option for one side is not accepted by the other: NewProducer takes
// ProducerOptions only, so a consumer's option passed to it does not
// compile. The shared options are accepted by both.
func TestOptionsForOneSideAreNotTheOthers(t *testing.T) {
	shared := map[string]Option{
		"WithLogger":       WithLogger(nil),
		"WithName":         WithName("n"),
		"WithCredsFile":    WithCredsFile("f"),
		"WithNATSOptions":  WithNATSOptions(),
		"WithDrainTimeout": WithDrainTimeout(time.Second),
	}
	for name, o := range shared {
		if _, ok := any(o).(ProducerOption); !ok {
			t.Errorf("%s is shared but not a ProducerOption", name)
		}
		if _, ok := any(o).(ConsumerOption); !ok {
			t.Errorf("%s is shared but not a ConsumerOption", name)
		}
	}
	for name, o := range map[string]ConsumerOption{
		"WithConcurrency": WithConcurrency(2),
		"WithBatch":       WithBatch(2),
		"WithPullExpiry":  WithPullExpiry(2 * time.Second),
		"WithDedup":       WithDedup(nil),
	} {
		if _, ok := o.(ProducerOption); ok {
			t.Errorf("%s is a consumer's option but NewProducer would accept it", name)
		}
	}
	if _, ok := WithMaxPending(2).(ConsumerOption); ok {
		t.Error("WithMaxPending is a producer's option but NewConsumer would accept it")
	}

	// Each side's options reach its settings.
	po := newProducerOptions([]ProducerOption{WithMaxPending(7), WithName("p"), WithDrainTimeout(3 * time.Second)})
	if po.maxPending != 7 || po.name != "p" || po.drainTimeout != 3*time.Second {
		t.Errorf("producer options: maxPending %d name %q drainTimeout %v, want 7 \"p\" 3s", po.maxPending, po.name, po.drainTimeout)
	}
	co := newConsumerOptions([]ConsumerOption{WithConcurrency(5), WithBatch(9), WithName("c")})
	if co.concurrency != 5 || co.batch != 9 || co.name != "c" || co.maxPending != DefaultMaxPending {
		t.Errorf("consumer options: concurrency %d batch %d name %q maxPending %d, want 5 9 \"c\" %d", co.concurrency, co.batch, co.name, co.maxPending, DefaultMaxPending)
	}
}
