/* svg.c - small SVG charts for gomap-lab --svg (no plotting library needed). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "lab.h"

#define W 720
#define H 360
#define ML 70
#define MR 20
#define MT 40
#define MB 50

static void header(FILE *f, const char *title)
{
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
               "font-family=\"sans-serif\" font-size=\"12\">\n", W, H);
    fprintf(f, "<rect width=\"%d\" height=\"%d\" fill=\"white\"/>\n", W, H);
    fprintf(f, "<text x=\"%d\" y=\"22\" font-size=\"15\" text-anchor=\"middle\">%s</text>\n", W / 2, title);
}

static double nice_max(double v)
{
    if (v <= 0) return 1;
    double p = pow(10, floor(log10(v)));
    for (double m = 1; m <= 10; m += (m < 2 ? 1 : m < 5 ? 3 : 5))
        if (m * p >= v) return m * p;
    return 10 * p;
}

static void axes(FILE *f, double xmax, double ymax, const char *xl, const char *yl)
{
    int x0 = ML, y0 = H - MB, x1 = W - MR, y1 = MT;
    fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"black\"/>\n", x0, y0, x1, y0);
    fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"black\"/>\n", x0, y0, x0, y1);
    for (int i = 0; i <= 4; i++) {
        double fy = y0 - (y0 - y1) * i / 4.0, fx = x0 + (x1 - x0) * i / 4.0;
        fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", x0, fy, x1, fy);
        fprintf(f, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%.3g</text>\n", x0 - 6, fy + 4, ymax * i / 4);
        if (xmax > 0) fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%.3g</text>\n", fx, y0 + 16, xmax * i / 4);
    }
    fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">%s</text>\n", (x0 + x1) / 2, H - 10, xl);
    fprintf(f, "<text x=\"16\" y=\"%d\" transform=\"rotate(-90 16 %d)\" text-anchor=\"middle\">%s</text>\n",
            (y0 + y1) / 2, (y0 + y1) / 2, yl);
}

bool lab_svg_lines(const char *path, const char *title, const char *xl, const char *yl,
                   const lab_series *s, int ns)
{
    FILE *f = fopen(path, "w");
    if (f == NULL) return false;
    double xmax = 0, ymax = 0;
    for (int k = 0; k < ns; k++)
        for (size_t i = 0; i < s[k].n; i++) {
            if (s[k].x[i] > xmax) xmax = s[k].x[i];
            if (s[k].y[i] > ymax) ymax = s[k].y[i];
        }
    xmax = nice_max(xmax);
    ymax = nice_max(ymax);
    header(f, title);
    axes(f, xmax, ymax, xl, yl);
    static const char *colors[] = { "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e" };
    for (int k = 0; k < ns; k++) {
        const char *c = colors[k % 5];
        fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" points=\"", c);
        for (size_t i = 0; i < s[k].n; i++) {
            if (i > 0 && s[k].restart_on_drop && s[k].y[i] < s[k].y[i - 1])
                fprintf(f, "\"/>\n<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" points=\"", c);
            fprintf(f, "%.1f,%.1f ", ML + (W - ML - MR) * s[k].x[i] / xmax,
                    (H - MB) - (H - MB - MT) * s[k].y[i] / ymax);
        }
        fprintf(f, "\"/>\n<text x=\"%d\" y=\"%d\" fill=\"%s\" text-anchor=\"end\">%s</text>\n",
                W - MR - 6, H - MB - 10 - 14 * k, c, s[k].label);
    }
    fprintf(f, "</svg>\n");
    return fclose(f) == 0;
}

bool lab_svg_bars(const char *path, const char *title, const char *xl, const char *yl,
                  const char *const *labels, const double *v, size_t n)
{
    FILE *f = fopen(path, "w");
    if (f == NULL) return false;
    double ymax = 0;
    for (size_t i = 0; i < n; i++)
        if (v[i] > ymax) ymax = v[i];
    ymax = nice_max(ymax);
    header(f, title);
    axes(f, 0, ymax, xl, yl);
    double bw = (double)(W - ML - MR) / (n ? (double)n : 1);
    for (size_t i = 0; i < n; i++) {
        double h = (H - MB - MT) * v[i] / ymax, x = ML + bw * (double)i;
        fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#1f77b4\"/>\n",
                x + 1, (H - MB) - h, bw - 2, h);
        if (n <= 24 || i % (n / 12 + 1) == 0)
            fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" font-size=\"10\">%s</text>\n",
                    x + bw / 2, H - MB + 14, labels[i]);
    }
    fprintf(f, "</svg>\n");
    return fclose(f) == 0;
}
