// Type definitions of herald.js, Herald's browser SDK.

/** A notification as Herald sends it (PROTOCOL.md). */
export interface Notification {
  /** A ULID: ids sort in creation order. */
  id: string;
  user_id: string;
  type: string;
  title: string;
  body?: string;
  link?: string;
  data?: Record<string, unknown>;
  /** RFC 3339 time with milliseconds, UTC. */
  created_at: string;
  is_read: boolean;
}

/** Close codes Herald uses. */
export declare const CloseCode: Readonly<{
  NORMAL: 1000;
  ABNORMAL: 1006;
  POLICY: 1008;
  TOO_BIG: 1009;
  INTERNAL: 1011;
  RESTART: 1012;
  TRY_AGAIN_LATER: 1013;
}>;

export interface Backoff {
  /** First reconnect delay cap in ms. Default 500. */
  initial?: number;
  /** Largest delay cap in ms. Default 30000. */
  max?: number;
  /** Growth of the cap per attempt. Default 2. */
  factor?: number;
  /** 1 (default): full jitter, uniform in [0, cap]; 0: exactly the cap. */
  jitter?: number;
}

export interface HeraldClientOptions {
  /** WebSocket URL of Herald, e.g. "wss://app.example.com/ws". The token is added as ?token=. */
  url: string;
  /** A fixed connect token. Give this or getToken. */
  token?: string;
  /**
   * Returns a fresh connect token. Called before the first connect, when the
   * cached token expires within tokenRefreshMargin, after Herald closed the
   * socket for an expired token (1008), and after the first of a run of
   * refused handshakes.
   */
  getToken?: () => Promise<string> | string;
  /** WebSocket constructor; default globalThis.WebSocket. */
  WebSocket?: new (url: string) => WebSocket;
  /** Application ping interval in ms; 0 turns pings off. Default 20000. */
  pingInterval?: number;
  /** A handshake not done in this many ms is abandoned and retried. Default 10000. */
  connectTimeout?: number;
  /** Reconnect backoff after errors. */
  backoff?: Backoff;
  /** After a server restart (1012), reconnect within a random [0, restartDelay] ms. Default 2000. */
  restartDelay?: number;
  /** Stop (state "failed") once handshakes have failed for this many ms (and 3 times). Default 120000. */
  giveUpAfter?: number;
  /** Renew a JWT token this many ms before its exp. Default 30000. */
  tokenRefreshMargin?: number;
  /** Default limit of list(). Default 20. */
  listLimit?: number;
  /** Where errors thrown by event listeners go; default: rethrown asynchronously. */
  onListenerError?: (err: unknown) => void;
  /** Random source in [0, 1) for jitter (tests). Default Math.random. */
  random?: () => number;
}

export interface Page {
  /** Newest first. */
  notifications: Notification[];
  /** Pass as `before` for the next page; absent at the end. */
  next?: string;
}

export interface HeraldEvents {
  open: Record<string, never>;
  /** The authoritative unread state, after every (re)connect. */
  sync: { notifications: Notification[]; unreadCount: number; truncated: boolean };
  notification: Notification;
  read: { ids: string[]; unreadCount: number };
  read_all: { unreadCount: number };
  deleted: { ids: string[]; unreadCount: number };
  /** The unread count changed. */
  count: number;
  close: { code: number; reason: string; willReconnect: boolean };
  /** An error frame from Herald, or getToken failing (code "token"). */
  error: { code: string; message: string; ref?: string; error?: unknown };
  reconnecting: { attempt: number; delay: number; code: number };
  /** A frame skipped a seq number; the client reconnects to resync. */
  gap: { expected: number; got: number };
  /** The client gave up; connect() starts again. */
  failed: { reason: string };
}

export type HeraldState = 'idle' | 'connecting' | 'open' | 'waiting' | 'failed' | 'closed';

export declare class HeraldError extends Error {
  /** An error frame's code (bad_request, not_found, rate_limited, ...), or not_connected, disconnected. */
  code: string;
  /** The type of the refused frame. */
  ref?: string;
}

export declare class HeraldClient {
  constructor(options: HeraldClientOptions);
  /** Unread notifications, oldest first (the newest ones when truncated). */
  readonly unread: Notification[];
  /** The user's full unread count. */
  readonly unreadCount: number;
  /** More unread exist than unread holds; page them with list(). */
  readonly truncated: boolean;
  readonly connected: boolean;
  readonly state: HeraldState;

  connect(): void;
  close(): void;
  /** Returns a function that removes the listener. */
  on<K extends keyof HeraldEvents>(type: K, fn: (detail: HeraldEvents[K]) => void): () => void;
  off<K extends keyof HeraldEvents>(type: K, fn: (detail: HeraldEvents[K]) => void): void;
  /** False when not connected. The result arrives as a read event in every tab. */
  markRead(ids: string | string[]): boolean;
  /** False when not connected. The result arrives as a read_all event in every tab. */
  markAllRead(): boolean;
  list(options?: { before?: string; unreadOnly?: boolean; limit?: number }): Promise<Page>;
}

/** The reconnect delay in ms for attempt (0 first): exponential, capped, jittered. */
export declare function backoffDelay(attempt: number, backoff?: Backoff, random?: () => number): number;

/** The decision after a socket ended: give up, or reconnect after delay ms. */
export declare function planReconnect(
  end: {
    code: number; reason?: string; opened: boolean; attempt: number; failures: number;
    failingFor?: number; hasGetToken?: boolean;
  },
  options?: Pick<HeraldClientOptions, 'backoff' | 'restartDelay' | 'giveUpAfter'>,
  random?: () => number,
): { stop: string } | {
  delay: number; attempt: number; failures: number; refreshToken?: boolean;
};
