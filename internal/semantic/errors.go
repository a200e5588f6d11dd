package semantic

import "fmt"

// Reasons of the rules that span objects and so cannot be checked at
// admission. Each is a condition reason the controllers report as is.
const (
	ReasonSemanticStrongerThanTopic = "SemanticStrongerThanTopic"
	ReasonSubjectOutsideTopic       = "SubjectOutsideTopic"
	ReasonRetryHorizonTooLong       = "RetryHorizonExceedsDuplicateWindow"
	// ReasonSubjectOutsideNamespace: a Topic's subjects must start with its
	// namespace's token. A CRD's CEL rules cannot read the namespace.
	ReasonSubjectOutsideNamespace = "SubjectOutsideNamespace"
)

// RuleError is a declared spec that cannot be compiled against its Topic.
// Field is the path of the offending field, as a user would write it.
type RuleError struct {
	Reason  string
	Field   string
	Message string
}

func (e *RuleError) Error() string {
	return fmt.Sprintf("%s: %s", e.Field, e.Message)
}
