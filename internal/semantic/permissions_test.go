package semantic

import (
	"reflect"
	"strings"
	"testing"

	hubflowv1 "github.com/hubflow/hubflow/api/v1alpha1"
)

func TestInboxPrefixIsOneNATSTokenAndUniquePerObject(t *testing.T) {
	objects := []struct {
		role      Role
		namespace string
		name      string
	}{
		{RoleProducer, "shop", "checkout"},
		{RoleConsumer, "shop", "checkout"}, // same name, other role
		{RoleProducer, "shop", "check.out"},
		{RoleProducer, "shop", "check-out"},
		{RoleProducer, "shop-eu", "checkout"},
		{RoleProducer, "shop", "eu-checkout"},
		{RoleProducer, "shop-eu-producer", "checkout"},
	}
	seen := map[string]int{}
	for i, o := range objects {
		p := InboxPrefix(o.role, o.namespace, o.name)
		if strings.ContainsAny(p, ".*> \t") {
			t.Errorf("InboxPrefix(%v) = %q is not a single NATS token", o, p)
		}
		if j, ok := seen[p]; ok {
			t.Errorf("objects %d and %d share the inbox prefix %q", j, i, p)
		}
		seen[p] = i
	}
	if got := InboxPrefix(RoleConsumer, "shop", "ledger.v2"); got != "_INBOX_shop_consumer_ledger_v2" {
		t.Errorf("InboxPrefix = %q", got)
	}
}

func TestPermissions(t *testing.T) {
	tests := []struct {
		name string
		got  Permissions
		want Permissions
	}{
		{
			name: "producer publishes on its subjects only and subscribes to its inbox",
			got:  ProducerPermissions(ProducerPolicy{Subjects: []string{"shop.payments", "shop.payments.>"}}, "_INBOX_shop_producer_checkout"),
			want: Permissions{
				Publish:   []string{"shop.payments", "shop.payments.>"},
				Subscribe: []string{"_INBOX_shop_producer_checkout.>"},
			},
		},
		{
			name: "acknowledging consumer reads and acks its own durable",
			got:  ConsumerPermissions(hubflowv1.AtLeastOnce, "shop_payments", "ledger", "_INBOX_shop_consumer_ledger"),
			want: Permissions{
				Publish: []string{
					"$JS.API.CONSUMER.INFO.shop_payments.ledger",
					"$JS.API.CONSUMER.MSG.NEXT.shop_payments.ledger",
					"$JS.ACK.shop_payments.ledger.>",
				},
				Subscribe: []string{"_INBOX_shop_consumer_ledger.>"},
			},
		},
		{
			name: "AtMostOnce consumer does not acknowledge, so it may not",
			got:  ConsumerPermissions(hubflowv1.AtMostOnce, "shop_clicks", "counter", "_INBOX_shop_consumer_counter"),
			want: Permissions{
				Publish: []string{
					"$JS.API.CONSUMER.INFO.shop_clicks.counter",
					"$JS.API.CONSUMER.MSG.NEXT.shop_clicks.counter",
				},
				Subscribe: []string{"_INBOX_shop_consumer_counter.>"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !reflect.DeepEqual(tt.got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", tt.got, tt.want)
			}
		})
	}
}

func TestPermissionsEqualIgnoresOrder(t *testing.T) {
	a := Permissions{Publish: []string{"a", "b"}, Subscribe: []string{"x"}}
	if !a.Equal(Permissions{Publish: []string{"b", "a"}, Subscribe: []string{"x"}}) {
		t.Error("same subjects in another order must be equal")
	}
	for _, o := range []Permissions{
		{Publish: []string{"a"}, Subscribe: []string{"x"}},
		{Publish: []string{"a", "b", "c"}, Subscribe: []string{"x"}},
		{Publish: []string{"a", "b"}, Subscribe: []string{"y"}},
		{Publish: []string{"a", "b"}},
	} {
		if a.Equal(o) {
			t.Errorf("%+v must differ from %+v", o, a)
		}
	}
}
