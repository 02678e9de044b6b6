package adminrpc

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/coffer-dev/coffer/cluster/clusterpb"
)

// Server serves a Service as the gRPC AdminService. Use NewServer and
// Register.
type Server struct {
	clusterpb.UnimplementedAdminServiceServer
	svc  Service
	addr func(nodeID string) string // nil unless svc is a LeaderAddrs
	log  *slog.Logger
}

// NewServer returns a server of svc. If svc also implements LeaderAddrs,
// not-leader errors from raftmeta or hashicorp/raft are answered with the
// leader's gRPC address. log receives a line per failed call (nil:
// discarded).
func NewServer(svc Service, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{svc: svc, log: log.With("component", "adminrpc.server")}
	if la, ok := svc.(LeaderAddrs); ok {
		s.addr = la.GRPCAddr
	}
	return s
}

// Register registers the AdminService on r (a *grpc.Server).
func (s *Server) Register(r grpc.ServiceRegistrar) {
	clusterpb.RegisterAdminServiceServer(r, s)
}

// Call implements clusterpb.AdminServiceServer: it decodes the body, calls
// the Service method and encodes the result.
func (s *Server) Call(ctx context.Context, req *clusterpb.CallRequest) (*clusterpb.CallResponse, error) {
	out, err := s.dispatch(ctx, req)
	if err != nil {
		gc := codes.OK // from the code
		if _, ok := err.(unknownMethodError); ok {
			gc = codes.Unimplemented
		}
		err = fromService(err, s.addr)
		level := slog.LevelDebug
		if CodeOf(err) == CodeInternal && ctx.Err() == nil {
			level = slog.LevelWarn
		}
		s.log.Log(ctx, level, "call failed", "method", req.GetMethod(), "group", req.GetGroup(), "code", string(CodeOf(err)), "err", err)
		return nil, toStatus(err, gc)
	}
	if out == nil {
		return &clusterpb.CallResponse{}, nil
	}
	body, err := json.Marshal(out)
	if err != nil {
		return nil, toStatus(fmt.Errorf("encode the result: %w", err), codes.OK)
	}
	return &clusterpb.CallResponse{Body: body}, nil
}

// unknownMethodError is the error of a call of a method the server does
// not know (a newer client): invalid_argument, answered with gRPC code
// Unimplemented.
type unknownMethodError string

func (e unknownMethodError) Error() string {
	return fmt.Sprintf("%s: unknown method %q", ErrInvalidArgument, string(e))
}

func (e unknownMethodError) Unwrap() error { return ErrInvalidArgument }

// dispatch runs one call; a nil result means no body.
func (s *Server) dispatch(ctx context.Context, req *clusterpb.CallRequest) (any, error) {
	switch req.GetMethod() {
	case methodStatus:
		if err := decodeBody(req.GetBody(), &emptyBody{}); err != nil {
			return nil, err
		}
		return nilIfErr(s.svc.Status(ctx))
	case methodRemoveNode:
		var b removeNodeBody
		if err := decodeBody(req.GetBody(), &b); err != nil {
			return nil, err
		}
		return nil, s.svc.RemoveNode(ctx, b.ID)
	case methodGroupInfo:
		if err := decodeBody(req.GetBody(), &emptyBody{}); err != nil {
			return nil, err
		}
		return nilIfErr(s.svc.GroupInfo(ctx, req.GetGroup()))
	case methodChangeGroup:
		var c GroupChange
		if err := decodeBody(req.GetBody(), &c); err != nil {
			return nil, err
		}
		if c.Group != req.GetGroup() {
			return nil, fmt.Errorf("%w: the call is for group %d, the change for group %d", ErrInvalidArgument, req.GetGroup(), c.Group)
		}
		return nil, s.svc.ChangeGroup(ctx, c)
	case methodClusterKeys:
		if err := decodeBody(req.GetBody(), &emptyBody{}); err != nil {
			return nil, err
		}
		return nilIfErr(s.svc.ClusterKeys(ctx))
	case methodStateHash:
		if err := decodeBody(req.GetBody(), &emptyBody{}); err != nil {
			return nil, err
		}
		return nilIfErr(s.svc.StateHash(ctx, req.GetGroup()))
	case methodScrub:
		if err := decodeBody(req.GetBody(), &emptyBody{}); err != nil {
			return nil, err
		}
		return nilIfErr(s.svc.ScrubBlocks(ctx))
	case methodRepair:
		if err := decodeBody(req.GetBody(), &emptyBody{}); err != nil {
			return nil, err
		}
		return nilIfErr(s.svc.RepairBlocks(ctx))
	}
	return nil, unknownMethodError(req.GetMethod())
}

// decodeBody decodes a request body strictly: an unknown field is an
// error, so that no argument a newer client sends is silently ignored. An
// empty body is the zero request.
func decodeBody(body []byte, v any) error {
	if len(body) == 0 {
		return nil
	}
	d := json.NewDecoder(bytes.NewReader(body))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return fmt.Errorf("%w: request body: %v", ErrInvalidArgument, err)
	}
	if d.More() {
		return fmt.Errorf("%w: request body: data after the JSON value", ErrInvalidArgument)
	}
	return nil
}

// nilIfErr returns (nil, err) when err is set, so that a failed call's
// partial result is never encoded, and v (as any) otherwise.
func nilIfErr[T any](v T, err error) (any, error) {
	if err != nil {
		return nil, err
	}
	return v, nil
}
