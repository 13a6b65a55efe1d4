// The one query cache: the app renders from it and the routes' loaders fill it ahead of the pages.
// A rate-limited read (429) is not retried out of sight: the page shows the API's message (which
// allowance ran out, when it has room again) and reads again by itself once Retry-After has passed.
import { QueryClient } from "@tanstack/react-query";
import { ApiError } from "./api/client";

// Never sooner than 5 s (the gateway's stage throttle says Retry-After: 1, and every refused query of
// every open page reading again each second would keep it throttled), never later than a minute.
const RATE_LIMITED_REFETCH_MIN_S = 5;
const RATE_LIMITED_REFETCH_MAX_S = 60;

/** When a query whose last read was refused with a 429 reads again (ms), or false. */
export function rateLimitedRefetch(error: unknown): number | false {
  if (!(error instanceof ApiError && error.status === 429)) return false;
  const seconds = error.retryAfter ?? RATE_LIMITED_REFETCH_MIN_S;
  return Math.min(RATE_LIMITED_REFETCH_MAX_S, Math.max(RATE_LIMITED_REFETCH_MIN_S, seconds)) * 1000;
}

export const queryOptions = {
  staleTime: 10_000,
  retry: (count: number, error: unknown) => !(error instanceof ApiError && error.status < 500) && count < 2,
  refetchOnWindowFocus: true,
  refetchInterval: (query: { state: { error: unknown } }) => rateLimitedRefetch(query.state.error),
};

export const queryClient = new QueryClient({ defaultOptions: { queries: queryOptions } });
