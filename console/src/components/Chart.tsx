// A thin React wrapper around uPlot (a ~20 KB canvas chart library): series by day.
import { useEffect, useRef } from "react";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";

export interface Series {
  label: string;
  values: number[];
  color: string;
}

export function DailyChart({ title, days, series }: { title: string; days: string[]; series: Series[] }) {
  const host = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const element = host.current;
    if (!element) return;
    const xs = days.map((day) => Date.parse(day + "T00:00:00Z") / 1000);
    const plot = new uPlot(
      {
        width: Math.max(280, element.clientWidth || 600),
        height: 220,
        series: [{}, ...series.map((s) => ({ label: s.label, stroke: s.color, width: 2, fill: s.color + "22" }))],
        axes: [{}, { size: 40 }],
        scales: { x: { time: true } },
      },
      [xs, ...series.map((s) => s.values)],
      element,
    );
    const resize = () => plot.setSize({ width: Math.max(280, element.clientWidth), height: 220 });
    window.addEventListener("resize", resize);
    return () => {
      window.removeEventListener("resize", resize);
      plot.destroy();
    };
  }, [days, series]);
  const total = series.map((s) => `${s.label} ${s.values.reduce((a, b) => a + b, 0)}`).join(", ");
  return (
    <figure className="chart">
      <figcaption>{title}</figcaption>
      <div ref={host} role="img" aria-label={`${title}: ${total}`} />
    </figure>
  );
}
