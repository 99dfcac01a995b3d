// Reads the Grafana dashboard (deploy/prometheus/curfew-dashboard.json) with protobuf's JSON
// parser (into google.protobuf.Struct): its panels, their queries, its template variables.
#pragma once

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace curfew::testing {

struct DashboardQuery {
  std::string ref_id;
  std::string expr;
  std::string datasource_uid;
};

struct DashboardPanel {
  double id = 0;
  std::string type;
  std::string title;
  bool has_grid_pos = false;
  std::vector<DashboardQuery> queries;
};

struct Dashboard {
  std::string title;
  std::string uid;
  std::vector<std::string> variables;
  std::vector<DashboardPanel> panels;  // rows included, nested panels flattened
};

namespace dashboard_detail {

inline std::string str(const google::protobuf::Struct& s, const std::string& key) {
  auto it = s.fields().find(key);
  return it != s.fields().end() && it->second.has_string_value() ? it->second.string_value() : "";
}

inline void add_panels(const google::protobuf::ListValue& list, Dashboard& out) {
  for (const auto& v : list.values()) {
    if (!v.has_struct_value()) continue;
    const auto& p = v.struct_value();
    DashboardPanel panel;
    panel.type = str(p, "type");
    panel.title = str(p, "title");
    if (auto it = p.fields().find("id"); it != p.fields().end())
      panel.id = it->second.number_value();
    panel.has_grid_pos = p.fields().contains("gridPos");
    if (auto it = p.fields().find("targets");
        it != p.fields().end() && it->second.has_list_value()) {
      for (const auto& t : it->second.list_value().values()) {
        if (!t.has_struct_value()) continue;
        DashboardQuery q;
        q.ref_id = str(t.struct_value(), "refId");
        q.expr = str(t.struct_value(), "expr");
        if (auto ds = t.struct_value().fields().find("datasource");
            ds != t.struct_value().fields().end() && ds->second.has_struct_value()) {
          q.datasource_uid = str(ds->second.struct_value(), "uid");
        }
        panel.queries.push_back(std::move(q));
      }
    }
    out.panels.push_back(std::move(panel));
    if (auto it = p.fields().find("panels");
        it != p.fields().end() && it->second.has_list_value()) {
      add_panels(it->second.list_value(), out);
    }
  }
}

}  // namespace dashboard_detail

// Parses the dashboard at `path`; nullopt (and `error` set) if it is not valid JSON.
inline std::optional<Dashboard> load_dashboard(const std::string& path, std::string* error) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  google::protobuf::Struct root;
  auto status = google::protobuf::util::JsonStringToMessage(text.str(), &root);
  if (!in || !status.ok()) {
    if (error) *error = in ? std::string(status.message()) : "cannot read " + path;
    return std::nullopt;
  }
  Dashboard d;
  d.title = dashboard_detail::str(root, "title");
  d.uid = dashboard_detail::str(root, "uid");
  if (auto t = root.fields().find("templating");
      t != root.fields().end() && t->second.has_struct_value()) {
    if (auto l = t->second.struct_value().fields().find("list");
        l != t->second.struct_value().fields().end() && l->second.has_list_value()) {
      for (const auto& v : l->second.list_value().values()) {
        if (v.has_struct_value())
          d.variables.push_back(dashboard_detail::str(v.struct_value(), "name"));
      }
    }
  }
  if (auto p = root.fields().find("panels");
      p != root.fields().end() && p->second.has_list_value()) {
    dashboard_detail::add_panels(p->second.list_value(), d);
  }
  return d;
}

}  // namespace curfew::testing
