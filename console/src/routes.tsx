// Route-level code splitting: the shell and the sign-in pages are the first page; every other page is
// its own chunk, loaded when opened.
import { lazy, Suspense, type ComponentType, type LazyExoticComponent } from "react";
import { createBrowserRouter, Navigate, type LoaderFunctionArgs } from "react-router";
import { automationsQuery, flowsQuery, logsQuery, skippedQuery, statsQuery } from "./api/pageQueries";
import { session } from "./api/session";
import { Loading } from "./components/ui";
import { Layout, RequireSession } from "./Layout";
import { queryClient } from "./queryClient";

type PageQuery = { queryKey: readonly unknown[]; queryFn: () => Promise<unknown> };

/** A loader that starts the page's chunk and, signed in, its queries, and resolves at once: the page
 * renders as soon as its chunk is there and finds its data in flight or cached (no waterfall). */
function prefetch(load: () => Promise<unknown>, queries: (params: URLSearchParams) => PageQuery[]) {
  return ({ request }: LoaderFunctionArgs) => {
    void load();
    if (session.current()) {
      for (const query of queries(new URL(request.url).searchParams)) void queryClient.prefetchQuery(query);
    }
    return null;
  };
}

function page(Component: LazyExoticComponent<ComponentType>) {
  return (
    <Suspense fallback={<Loading />}>
      <Component />
    </Suspense>
  );
}

const Auth = {
  Login: lazy(() => import("./pages/auth").then((m) => ({ default: m.LoginPage }))),
  Signup: lazy(() => import("./pages/auth").then((m) => ({ default: m.SignupPage }))),
  Forgot: lazy(() => import("./pages/auth").then((m) => ({ default: m.ForgotPasswordPage }))),
  Reset: lazy(() => import("./pages/auth").then((m) => ({ default: m.ResetPasswordPage }))),
  Accept: lazy(() => import("./pages/auth").then((m) => ({ default: m.AcceptInvitationPage }))),
};
const Overview = lazy(() => import("./pages/overview"));
const Accounts = lazy(() => import("./pages/accounts"));
const AccountCallback = lazy(() => import("./pages/accounts").then((m) => ({ default: m.OAuthCallbackPage })));
const Templates = lazy(() => import("./pages/templates"));
const Automations = lazy(() => import("./pages/automations"));
const loadLogs = () => import("./pages/logs");
const loadStats = () => import("./pages/stats");
const Logs = lazy(loadLogs);
const Stats = lazy(loadStats);
const Members = lazy(() => import("./pages/members"));
const ApiKeys = lazy(() => import("./pages/apikeys"));
const Billing = lazy(() => import("./pages/billing"));
const Flows = lazy(() => import("./pages/flows"));
const Contacts = lazy(() => import("./pages/contacts"));
const NotFound = lazy(() => import("./pages/overview").then((m) => ({ default: m.NotFoundPage })));

export const routes = [
  { path: "/login", element: page(Auth.Login) },
  { path: "/signup", element: page(Auth.Signup) },
  { path: "/password/forgot", element: page(Auth.Forgot) },
  { path: "/password/reset", element: page(Auth.Reset) },
  { path: "/invitations/accept", element: page(Auth.Accept) },
  {
    element: (
      <RequireSession>
        <Layout />
      </RequireSession>
    ),
    children: [
      { path: "/", element: page(Overview) },
      { path: "/accounts", element: page(Accounts) },
      { path: "/accounts/callback", element: page(AccountCallback) },
      { path: "/templates", element: page(Templates) },
      { path: "/automations", element: page(Automations) },
      { path: "/flows", element: page(Flows) },
      { path: "/contacts", element: page(Contacts) },
      {
        path: "/logs",
        element: page(Logs),
        loader: prefetch(loadLogs, (params) => [logsQuery(params), automationsQuery]),
      },
      {
        path: "/stats",
        element: page(Stats),
        loader: prefetch(loadStats, (params) => [statsQuery(params), skippedQuery(params), automationsQuery, flowsQuery]),
      },
      { path: "/members", element: page(Members) },
      { path: "/api-keys", element: page(ApiKeys) },
      { path: "/billing", element: page(Billing) },
      { path: "/dashboard", element: <Navigate to="/" replace /> },
      { path: "*", element: page(NotFound) },
    ],
  },
];

export const router = createBrowserRouter(routes);
