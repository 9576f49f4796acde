package bus

import "github.com/heraldhq/herald/sidecar/notification"

// applied reports, from a read transaction, whether applying c would change
// nothing here. Every change of a watched user arrives twice, through
// Pub/Sub and through the stream; the second copy is answered by this check
// instead of a write transaction (a durable commit, an fsync) that would
// change nothing. It answers this replica's own echo the same way, so a
// change made here costs no second write when it comes back from Redis.
// When in doubt it returns false and ApplyRemote decides.
//
// It is safe because state only moves forward along a change's order: once
// a notification exists it stays until a later deleted, once read it stays
// read. deleted is never skipped: applying it tombstones IDs not seen yet,
// which keeps a late created of them out.
func (r *Redis) applied(c notification.Change) bool {
	st := r.opts.Store
	switch c.Kind {
	case notification.KindCreated:
		if c.Notification == nil {
			return false
		}
		_, err := st.Get(c.UserID, c.Notification.ID)
		return err == nil
	case notification.KindRead:
		if len(c.IDs) == 0 {
			return false
		}
		for _, id := range c.IDs {
			n, err := st.Get(c.UserID, id)
			if err == nil && !n.IsRead {
				return false
			}
			// Not found: ApplyRemote ignores unknown IDs of a read too.
		}
		return true
	case notification.KindReadAll:
		n, err := st.UnreadCount(c.UserID)
		return err == nil && n == 0
	}
	return false
}
