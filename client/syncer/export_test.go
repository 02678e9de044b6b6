package syncer

// SetHook makes e call f before each side effect; an error from f stops
// the step (tests simulate crashes with ErrCrash).
func SetHook(e *Engine, f func(step string) error) { e.hooks = f }
