package wirecode

import (
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// StatusError is a gRPC status error with code gc and message msg that
// carries info (a service's domain and wire code) as a detail.
func StatusError(gc codes.Code, msg string, info *errdetails.ErrorInfo) error {
	st := status.New(gc, msg)
	withInfo, err := st.WithDetails(info)
	if err != nil { // cannot happen: an ErrorInfo always marshals
		return st.Err()
	}
	return withInfo.Err()
}

// ErrorInfo returns the ErrorInfo of domain that st carries, or nil (a
// failure of the transport itself, or another service's error).
func ErrorInfo(st *status.Status, domain string) *errdetails.ErrorInfo {
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetDomain() == domain {
			return info
		}
	}
	return nil
}
