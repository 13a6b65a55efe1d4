// Route-level code splitting: the shell and the sign-in pages are the first page; every other page is
// its own chunk, loaded when opened.
import { lazy, Suspense, type ComponentType, type LazyExoticComponent } from "react";
import { createBrowserRouter, Navigate } from "react-router";
import { Loading } from "./components/ui";
import { Layout, RequireSession } from "./Layout";

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
const Logs = lazy(() => import("./pages/logs"));
const Stats = lazy(() => import("./pages/stats"));
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
      { path: "/logs", element: page(Logs) },
      { path: "/stats", element: page(Stats) },
      { path: "/members", element: page(Members) },
      { path: "/api-keys", element: page(ApiKeys) },
      { path: "/billing", element: page(Billing) },
      { path: "/dashboard", element: <Navigate to="/" replace /> },
      { path: "*", element: page(NotFound) },
    ],
  },
];

export const router = createBrowserRouter(routes);
