// A message as Instagram shows it in a DM thread: the bubble, its buttons, quick replies, a carousel.
export interface PreviewButton {
  type?: string;
  title: string;
  url?: string | null;
  payload?: string | null;
}
export interface PreviewCard {
  title: string;
  subtitle?: string | null;
  image_url?: string | null;
  buttons?: PreviewButton[];
}
export interface PreviewMessage {
  text: string;
  buttons: PreviewButton[];
  quickReplies: { title?: string | null; content_type?: string }[];
  cards: PreviewCard[];
}

type Json = Record<string, unknown>;

/** The Send API message the API rendered (text, button template, generic template, quick replies). */
export function fromSendApi(message: Json | null | undefined, fallbackText = ""): PreviewMessage {
  const out: PreviewMessage = { text: fallbackText, buttons: [], quickReplies: [], cards: [] };
  if (!message) return out;
  if (typeof message.text === "string") out.text = message.text;
  const attachment = message.attachment as Json | undefined;
  const payload = attachment?.payload as Json | undefined;
  if (payload?.template_type === "button") {
    out.text = String(payload.text ?? out.text);
    out.buttons = (payload.buttons as PreviewButton[] | undefined) ?? [];
  } else if (payload?.template_type === "generic") {
    out.text = "";
    out.cards = ((payload.elements as PreviewCard[] | undefined) ?? []).map((card) => ({ ...card }));
  }
  out.quickReplies = (message.quick_replies as PreviewMessage["quickReplies"] | undefined) ?? [];
  return out;
}

function quickTitle(reply: { title?: string | null; content_type?: string }): string {
  if (reply.title) return reply.title;
  if (reply.content_type === "user_email") return "Email";
  if (reply.content_type === "user_phone_number") return "Phone";
  return "…";
}

export function DmPreview({ message, username = "your.account" }: { message: PreviewMessage; username?: string }) {
  return (
    <figure className="dm" aria-label="Preview of the DM">
      <figcaption className="dm-head">
        <span className="avatar" aria-hidden="true">
          {username.slice(0, 1).toUpperCase()}
        </span>
        <span>{username}</span>
      </figcaption>
      <div className="dm-thread">
        {message.text ? (
          <div className="bubble" data-testid="dm-bubble">
            <p>{message.text}</p>
            {message.buttons.length ? (
              <ul className="dm-buttons">
                {message.buttons.map((button, i) => (
                  <li key={i}>{button.title || "(no title)"}</li>
                ))}
              </ul>
            ) : null}
          </div>
        ) : null}
        {message.cards.length ? (
          <ul className="carousel" aria-label="Carousel">
            {message.cards.map((card, i) => (
              <li key={i} className="card">
                <div className="card-image" aria-hidden="true" />
                <strong>{card.title}</strong>
                {card.subtitle ? <span>{card.subtitle}</span> : null}
                <ul className="dm-buttons">
                  {(card.buttons ?? []).map((button, j) => (
                    <li key={j}>{button.title}</li>
                  ))}
                </ul>
              </li>
            ))}
          </ul>
        ) : null}
        {message.quickReplies.length ? (
          <ul className="quick-replies" aria-label="Quick replies">
            {message.quickReplies.map((reply, i) => (
              <li key={i}>{quickTitle(reply)}</li>
            ))}
          </ul>
        ) : null}
      </div>
    </figure>
  );
}
