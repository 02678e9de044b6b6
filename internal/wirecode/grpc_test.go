package wirecode

import (
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestStatusErrorCarriesInfo(t *testing.T) {
	err := StatusError(codes.NotFound, "no such block", &errdetails.ErrorInfo{Domain: "d.coffer", Reason: "not_found",
		Metadata: map[string]string{"k": "v"}})
	st := status.Convert(err)
	if st.Code() != codes.NotFound || st.Message() != "no such block" {
		t.Fatalf("status %v %q", st.Code(), st.Message())
	}
	info := ErrorInfo(st, "d.coffer")
	if info.GetReason() != "not_found" || info.GetMetadata()["k"] != "v" {
		t.Fatalf("ErrorInfo = %v", info)
	}
	if ErrorInfo(st, "other.coffer") != nil {
		t.Error("another domain's ErrorInfo was returned")
	}
	if ErrorInfo(status.New(codes.Unavailable, "transport"), "d.coffer") != nil {
		t.Error("a status without details has an ErrorInfo")
	}
}
